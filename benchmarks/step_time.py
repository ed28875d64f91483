"""Training-step time of the estimators and objectives, measured side by side in one process.

Prints three tables of ratios (each the median over rounds of a ratio measured within the
same round, so slow phases of a shared machine hit both sides alike):

1. every objective relative to its base estimator alone (objective "none") at K = 16: the
   paper says the mutual-information term costs next to nothing (target <= 1.05);
2. the step time at K = 1, 4, 16, 64 relative to K = 1;
3. the step time per sample at K = 1, 16, 64 and the ratio K = 64 / K = 16 (target <= 4.4),
   for the fused, chunked decoder head the models use and for the reference head that
   materialises the [K, B, V] logits (``symbol_log_likelihood``), side by side;
4. Pyro's RenyiELBO(alpha=0, vectorize_particles=True), i.e. IWAE-K, relative to ours on
   the same model, batch and optimiser;
5. the end-to-end trials per hour of the ``cpu`` profile (the sweeps' trial configs,
   params/synthetic/cpu/trial-*.yaml) with one thread, extrapolated from shortened runs:
   each config is run for a few and for more steps (the difference gives the time per step
   without the fixed costs), then a full trial is the fixed cost, evaluation included, plus
   its steps times that; CPU time of the process, so that other load does not inflate it;
6. the cached softmax head (``train.head: cached``, the default) relative to the recomputing one (every run
   recorded before it) at K = 1, 16, 64, for DReG and VIMCO: the step time ratio (target <= 1: no slower).

A step is the loss, its backward pass and an Adam update, on the synthetic model of §7.1.1.

    python benchmarks/step_time.py [--vocab 1000] [--batch 256] [--device auto] [--sections 1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from micmco.experiment import run
from micmco.gradients import BaseEstimator, VariationalLoss, estimator_spec
from micmco.latents import CategoricalLatent, GaussianLatent
from micmco.models import SingleSymbolVAE
from micmco.models.common import symbol_log_likelihood
from micmco.models.synthetic import CategoricalEmbedding
from micmco.objectives import Objective, ObjectiveKind
from micmco.runconfig import load_config
from micmco.runtime import resolve_device

OBJECTIVES = {
    "none": (ObjectiveKind.NONE, 0.0, 1.0),
    "kl": (ObjectiveKind.KL, 0.5, 1.0),
    "renyi": (ObjectiveKind.RENYI, 0.5, 2.0),
    "power": (ObjectiveKind.POWER, 0.0, 2.0),
}


class MaterialisedEmbedding(CategoricalEmbedding):
    """The reference categorical embedding: the [K, B, L, H] lookups, then their sum."""

    def forward(self, z):
        return self.table(z + self.offsets).sum(-2)


class ReferenceHeadVAE(SingleSymbolVAE):
    """The model as it was before the fused head: full [K, B, V] logits, then log-softmax and gather
    (and, for categorical latents, the materialised embedding)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.decoder[0], CategoricalEmbedding):
            self.decoder[0].__class__ = MaterialisedEmbedding

    def log_likelihood(self, x, z):
        return symbol_log_likelihood(self.decoder(z), x)


class Case:
    """One configuration: a model, a batch and a function doing one training step."""

    def __init__(self, name: str, args, latent_kind: str, make_step: Callable, reference_head: bool = False):
        self.name = name
        latent = GaussianLatent(40) if latent_kind == "gaussian" else CategoricalLatent(8, 10)
        torch.manual_seed(0)
        model_class = ReferenceHeadVAE if reference_head else SingleSymbolVAE
        self.model = model_class(args.vocab, latent, args.hidden).to(args.device)
        self.x = torch.randint(args.vocab, (args.batch,), device=args.device)
        self.step = make_step(self)
        self.times: list[float] = []

    def run(self, steps: int, device: torch.device) -> None:
        _sync(device)
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(device)
        self.times.append((time.perf_counter() - started) / steps)


def micmco_step(base: str, objective: str, K: int, device: torch.device):
    kind, lam, alpha = OBJECTIVES[objective]
    loss_fn = VariationalLoss(base, Objective(kind, lam, alpha, K, K))

    def make(case: Case):
        optimizer = torch.optim.Adam(case.model.parameters(), lr=1e-4, betas=(0.0, 0.999), eps=1e-8)
        generator = torch.Generator(device=device).manual_seed(0)

        def step():
            loss, _ = loss_fn(case.model, case.x, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    return make


def pyro_step(K: int):
    import pyro
    import pyro.distributions as dist
    from pyro.infer import RenyiELBO

    def make(case: Case):
        vae, D = case.model, case.model.latent.dim
        pyro.clear_param_store()

        def model(x):
            pyro.module("decoder", vae.decoder)
            with pyro.plate("data", x.shape[0]):
                loc = torch.zeros(D, device=x.device)
                z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
                pyro.sample("x", dist.Categorical(logits=vae.decoder(z)), obs=x)

        def guide(x):
            pyro.module("encoder", vae.encoder)
            with pyro.plate("data", x.shape[0]):
                mean, log_var = vae.encoder(x).chunk(2, dim=-1)
                pyro.sample("z", dist.Normal(mean, (0.5 * log_var).exp()).to_event(1))

        elbo = RenyiELBO(alpha=0.0, num_particles=K, vectorize_particles=True, max_plate_nesting=1)
        elbo.loss_and_grads(model, guide, case.x)  # registers the modules' parameters
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-4, betas=(0.0, 0.999), eps=1e-8)

        def step():
            optimizer.zero_grad(set_to_none=True)
            elbo.loss_and_grads(model, guide, case.x)
            optimizer.step()

        return step

    return make


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cases: dict[str, Case], args) -> None:
    for case in cases.values():  # warm-up, not recorded
        case.run(1, args.device)
    for _ in range(args.rounds):
        for case in cases.values():
            case.run(args.steps, args.device)


def ratio(cases, name, baseline) -> float:
    return statistics.median(a / b for a, b in zip(cases[name].times, cases[baseline].times))


# The estimators timed (the paper's main four), each on the latents it is made for: the registry says which
TIMED = (BaseEstimator.IWAE, BaseEstimator.DREG, BaseEstimator.REINFORCE, BaseEstimator.VIMCO)
BASES = {base.value: "gaussian" if estimator_spec(base).reparameterised else "categorical" for base in TIMED}


def scaling_runs(sample_counts) -> dict[str, list[tuple[str, int]]]:
    """Per curve, the (base estimator, K) of each sample count; REINFORCE 1 stands in for VIMCO 1, as in the paper."""
    return {
        "dreg/renyi": [("dreg", K) for K in sample_counts],
        "vimco/renyi": [
            ("reinforce" if K < estimator_spec("vimco").min_samples else "vimco", K) for K in sample_counts
        ],
    }


def objectives_section(args) -> None:
    cases = {
        f"{base}/{objective}": Case(f"{base}/{objective}", args, latent, micmco_step(base, objective, 16, args.device))
        for base, latent in BASES.items()
        for objective in OBJECTIVES
    }
    measure(cases, args)
    print("\n1. Step time of each objective relative to the base estimator alone, K = 16 (target <= 1.05)")
    print(f"{'base':10s} {'none (ms)':>10s} " + " ".join(f"{o:>7s}" for o in OBJECTIVES if o != "none"))
    for base in BASES:
        none = statistics.median(cases[f"{base}/none"].times) * 1e3
        ratios = [ratio(cases, f"{base}/{o}", f"{base}/none") for o in OBJECTIVES if o != "none"]
        print(f"{base:10s} {none:10.1f} " + " ".join(f"{r:7.3f}" for r in ratios))


def sample_count_section(args) -> None:
    sample_counts = (1, 4, 16, 64)
    scaling = scaling_runs(sample_counts)
    cases = {}
    for label, runs in scaling.items():
        latent = BASES[runs[-1][0]]
        for base, K in runs:
            cases[f"{label}/{K}"] = Case(label, args, latent, micmco_step(base, "renyi", K, args.device))
    measure(cases, args)
    print("\n2. Step time relative to K = 1 (Rényi objective; VIMCO's K = 1 is REINFORCE 1)")
    print(f"{'estimator':12s} {'K=1 (ms)':>9s} " + " ".join(f"{'K=' + str(K):>7s}" for K in sample_counts))
    for label in scaling:
        one = statistics.median(cases[f"{label}/1"].times) * 1e3
        ratios = [ratio(cases, f"{label}/{K}", f"{label}/1") for K in sample_counts]
        print(f"{label:12s} {one:9.1f} " + " ".join(f"{r:7.2f}" for r in ratios))


def per_sample_section(args) -> None:
    sample_counts = (1, 16, 64)
    heads = {"fused": False, "reference": True}
    scaling = scaling_runs(sample_counts)
    cases = {}
    for label, runs in scaling.items():
        latent = BASES[runs[-1][0]]
        for base, K in runs:
            for head, reference in heads.items():
                step = micmco_step(base, "renyi", K, args.device)
                cases[f"{label}/{head}/{K}"] = Case(label, args, latent, step, reference_head=reference)
    measure(cases, args)
    print(
        "\n3. Step time per sample (µs: step time / (K x batch)), K = 64 / K = 16 (target <= 4.4) and the fused "
        "head's time over the reference head's at K = 64; Rényi objective, VIMCO's K = 1 is REINFORCE 1"
    )
    print(
        f"{'estimator':12s} {'head':10s} "
        + " ".join(f"{'K=' + str(K):>7s}" for K in sample_counts)
        + f" {'64/16':>7s} {'/ref@64':>8s}"
    )
    for label in scaling:
        for head in heads:
            per_sample = [
                statistics.median(cases[f"{label}/{head}/{K}"].times) / (K * args.batch) * 1e6 for K in sample_counts
            ]
            growth = ratio(cases, f"{label}/{head}/64", f"{label}/{head}/16")
            against_reference = ratio(cases, f"{label}/{head}/64", f"{label}/reference/64")
            print(
                f"{label:12s} {head:10s} "
                + " ".join(f"{t:7.2f}" for t in per_sample)
                + f" {growth:7.2f} {against_reference:8.3f}"
            )


def pyro_section(args) -> None:
    try:
        import pyro  # noqa: F401
    except ImportError:
        print("\n4. Pyro is not installed (pip install -e '.[bench]'); skipped")
        return
    cases = {
        "micmco": Case("micmco", args, "gaussian", micmco_step("iwae", "none", 16, args.device)),
        "pyro": Case("pyro", args, "gaussian", pyro_step(16)),
    }
    measure(cases, args)
    ours = statistics.median(cases["micmco"].times) * 1e3
    theirs = statistics.median(cases["pyro"].times) * 1e3
    print("\n4. IWAE 16 step, Pyro RenyiELBO(alpha=0, num_particles=16, vectorize_particles=True) vs micmco iwae")
    print(f"micmco {ours:.1f} ms, pyro {theirs:.1f} ms, pyro / micmco = {ratio(cases, 'pyro', 'micmco'):.3f}")


def trials_section(args) -> None:
    """Trials per hour of the cpu profile, one thread, extrapolated from two shortened runs per config."""
    directory = Path(args.profile_dir)
    configs = sorted(directory.glob(args.profile_glob))
    if not configs:
        print(f"\n5. no configs {args.profile_glob} in {directory}; skipped")
        return
    short, longer = args.trial_steps
    print(
        f"\n5. Trial time of {directory}/{args.profile_glob} with 1 thread, extrapolated (not measured end to end) "
        f"from runs of {short} and {longer} steps:\n   per step = difference of the two runs' times / "
        f"{longer - short}; trial = its steps x per step + the rest of the {short}-step run (setup, evaluation).\n"
        "   Times are the process's CPU time (one thread), so other load on a shared machine does not inflate them."
    )
    print(f"{'config':28s} {'steps':>6s} {'ms/step':>8s} {'other (s)':>9s} {'trial (s)':>9s}")
    totals = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="micmco-bench-") as output_dir:
            overrides = [f"output_dir={output_dir}", "train.progress=false", "train.checkpoint_every=0"]
            quiet = lambda message: None
            run(load_config(configs[0], [*overrides, f"train.steps={short}", "seed=1"]), echo=quiet)  # warm-up
            for path in configs:
                steps = load_config(path).train.steps
                cpu_time = {}
                for count in (short, longer):
                    started = time.process_time()
                    run(load_config(path, [*overrides, f"train.steps={count}"]), echo=quiet)
                    cpu_time[count] = time.process_time() - started
                per_step = (cpu_time[longer] - cpu_time[short]) / (longer - short)
                other = cpu_time[short] - short * per_step
                trial = other + steps * per_step
                totals.append(trial)
                print(f"{path.stem:28s} {steps:6d} {per_step * 1e3:8.1f} {other:9.1f} {trial:9.1f}")
    finally:
        torch.set_num_threads(threads)
    mean = statistics.mean(totals)
    print(
        f"mean trial {mean:.0f} s: {3600 / mean:.0f} trials per hour per worker (1 thread; extrapolated), "
        f"the set of {len(totals)} in {sum(totals) / 60:.1f} min"
    )


def head_section(args) -> None:
    cases = {}
    for base, latent in (("dreg", "gaussian"), ("vimco", "categorical")):
        for K in (1, 16, 64):
            if base == "vimco" and K == 1:
                continue
            for head in ("cached", "recompute"):
                case = Case(f"{base} {K} {head}", args, latent, micmco_step(base, "kl", K, args.device))
                case.model.head = head
                cases[case.name] = case
    measure(cases, args)
    print("\n6. The cached softmax head relative to the recomputing one (step time; target <= 1)")
    for name in cases:
        if name.endswith(" cached"):
            stem = name.removesuffix(" cached")
            milliseconds = statistics.median(cases[f"{stem} recompute"].times) * 1e3
            relative = ratio(cases, name, f"{stem} recompute")
            print(f"  {stem:10s} recompute {milliseconds:8.1f} ms, cached / recompute {relative:6.3f}")


SECTIONS = {
    "1": objectives_section,
    "2": sample_count_section,
    "3": per_sample_section,
    "4": pyro_section,
    "5": trials_section,
    "6": head_section,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=1000, help="vocabulary size (paper: 10000)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (paper: 256)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size (paper: 128)")
    parser.add_argument("--rounds", type=int, default=7, help="measurement rounds (ratios are medians over them)")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per case and round")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated sections to run (see above)")
    parser.add_argument("--no-pyro", action="store_true", help="skip the Pyro comparison (section 4)")
    parser.add_argument("--profile-dir", default="params/synthetic/cpu", help="the configs of section 5")
    parser.add_argument(
        "--profile-glob", default="trial-*.yaml", help="which configs of --profile-dir (default: the sweeps' trials)"
    )
    parser.add_argument(
        "--trial-steps", type=int, nargs=2, default=(20, 120), metavar=("SHORT", "LONG"), help="section 5 run lengths"
    )
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    sections = [section.strip() for section in args.sections.split(",") if section.strip()]
    unknown = [section for section in sections if section not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    if args.no_pyro and "4" in sections:
        sections.remove("4")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores (ratios are measured side by side; absolute times are not)")
    print(
        f"device {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"vocabulary {args.vocab}, batch {args.batch}, hidden {args.hidden}, {args.rounds} rounds x {args.steps} steps"
    )
    for section in sections:
        SECTIONS[section](args)


if __name__ == "__main__":
    main()
