"""Training-step time of the estimators and objectives, measured side by side in one process.

Prints three tables of ratios (each the median over rounds of a ratio measured within the
same round, so slow phases of a shared machine hit both sides alike):

1. every objective relative to its base estimator alone (objective "none") at K = 16: the
   paper says the mutual-information term costs next to nothing (target <= 1.05);
2. the step time at K = 1, 4, 16, 64 relative to K = 1;
3. Pyro's RenyiELBO(alpha=0, vectorize_particles=True), i.e. IWAE-K, relative to ours on
   the same model, batch and optimiser.

A step is the loss, its backward pass and an Adam update, on the synthetic model of §7.1.1.

    python benchmarks/step_time.py [--vocab 1000] [--batch 256] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from micmco.gradients import VariationalLoss
from micmco.latents import CategoricalLatent, GaussianLatent
from micmco.models import SingleSymbolVAE
from micmco.objectives import Objective, ObjectiveKind
from micmco.trainer import resolve_device

OBJECTIVES = {
    "none": (ObjectiveKind.NONE, 0.0, 1.0),
    "kl": (ObjectiveKind.KL, 0.5, 1.0),
    "renyi": (ObjectiveKind.RENYI, 0.5, 2.0),
    "power": (ObjectiveKind.POWER, 0.0, 2.0),
}


class Case:
    """One configuration: a model, a batch and a function doing one training step."""

    def __init__(self, name: str, args, latent_kind: str, make_step: Callable):
        self.name = name
        latent = GaussianLatent(40) if latent_kind == "gaussian" else CategoricalLatent(8, 10)
        torch.manual_seed(0)
        self.model = SingleSymbolVAE(args.vocab, latent, args.hidden).to(args.device)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=1000, help="vocabulary size (paper: 10000)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (paper: 256)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size (paper: 128)")
    parser.add_argument("--rounds", type=int, default=7, help="measurement rounds (ratios are medians over them)")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per case and round")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--no-pyro", action="store_true", help="skip the Pyro comparison")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    device = args.device
    print(
        f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"vocabulary {args.vocab}, batch {args.batch}, hidden {args.hidden}, {args.rounds} rounds x {args.steps} steps"
    )

    # 1. objectives at K = 16
    bases = {"iwae": "gaussian", "dreg": "gaussian", "reinforce": "categorical", "vimco": "categorical"}
    cases = {
        f"{base}/{objective}": Case(f"{base}/{objective}", args, latent, micmco_step(base, objective, 16, device))
        for base, latent in bases.items()
        for objective in OBJECTIVES
    }
    measure(cases, args)
    print("\n1. Step time of each objective relative to the base estimator alone, K = 16 (target <= 1.05)")
    print(f"{'base':10s} {'none (ms)':>10s} " + " ".join(f"{o:>7s}" for o in OBJECTIVES if o != "none"))
    for base in bases:
        none = statistics.median(cases[f"{base}/none"].times) * 1e3
        ratios = [ratio(cases, f"{base}/{o}", f"{base}/none") for o in OBJECTIVES if o != "none"]
        print(f"{base:10s} {none:10.1f} " + " ".join(f"{r:7.3f}" for r in ratios))

    # 2. sample counts
    sample_counts = (1, 4, 16, 64)
    scaling = {"dreg/renyi": [("dreg", K) for K in sample_counts]}
    # VIMCO needs K >= 2; REINFORCE 1 stands in for VIMCO 1, as in the paper
    scaling["vimco/renyi"] = [("reinforce" if K == 1 else "vimco", K) for K in sample_counts]
    cases = {}
    for label, runs in scaling.items():
        latent = bases[runs[-1][0]]
        for base, K in runs:
            cases[f"{label}/{K}"] = Case(label, args, latent, micmco_step(base, "renyi", K, device))
    measure(cases, args)
    print("\n2. Step time relative to K = 1 (Rényi objective; VIMCO's K = 1 is REINFORCE 1)")
    print(f"{'estimator':12s} {'K=1 (ms)':>9s} " + " ".join(f"{'K=' + str(K):>7s}" for K in sample_counts))
    for label in scaling:
        one = statistics.median(cases[f"{label}/1"].times) * 1e3
        ratios = [ratio(cases, f"{label}/{K}", f"{label}/1") for K in sample_counts]
        print(f"{label:12s} {one:9.1f} " + " ".join(f"{r:7.2f}" for r in ratios))

    # 3. Pyro
    if args.no_pyro:
        return
    try:
        import pyro  # noqa: F401
    except ImportError:
        print("\n3. Pyro is not installed (pip install -e '.[bench]'); skipped")
        return
    cases = {
        "micmco": Case("micmco", args, "gaussian", micmco_step("iwae", "none", 16, device)),
        "pyro": Case("pyro", args, "gaussian", pyro_step(16)),
    }
    measure(cases, args)
    ours = statistics.median(cases["micmco"].times) * 1e3
    theirs = statistics.median(cases["pyro"].times) * 1e3
    print("\n3. IWAE 16 step, Pyro RenyiELBO(alpha=0, num_particles=16, vectorize_particles=True) vs micmco iwae")
    print(f"micmco {ours:.1f} ms, pyro {theirs:.1f} ms, pyro / micmco = {ratio(cases, 'pyro', 'micmco'):.3f}")


if __name__ == "__main__":
    main()
