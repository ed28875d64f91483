"""Names, in one place: the vocabularies of estimators and objectives, the curve ids of the studies,
the paper's names of curves and the names of its trial files.

A curve id names one curve of a figure and its study (``params/studies/<profile>/<id>.yaml``):
``dreg16-kl`` is DReG 16 with the KL objective, ``dreg16-kl1`` DReG 16/1 (K = 16 samples for
ln p(x), K′ = 1 for the divergence), ``vimco1-renyi16`` VIMCO 1/16, ``elbo-power`` the ELBO with the
power objective, ``vqvae`` the VQ-VAE. The paper's trial files encode the same settings in their
names (``l40x0-bs256-hs128-t40-dreg16-kl1.tsv``); the paper calls REINFORCE 1 "vimco1", the ELBO
"vae" and the power objective "alpha".

The estimators are the registry's (:data:`micmco.gradients.BASE_ESTIMATORS`), read when a name is
parsed: an estimator registered at any time has curve ids (``<name><K>-<objective>``) and a label.
The paper's own file names keep the paper's vocabulary (``PAPER_NAME``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .gradients import BASE_ESTIMATORS, estimator_spec
from .objectives import ObjectiveKind

__all__ = [
    "ptb_curve_id",
    "estimator_names",
    "estimator_label",
    "OBJECTIVES",
    "OBJECTIVE_NAMES",
    "Setting",
    "parse_curve_id",
    "curve_label",
    "same_curve_but_objective",
    "curve_draws",
    "paper_file_name",
    "PaperFile",
    "parse_paper_file_name",
]

OBJECTIVES = tuple(member.value for member in ObjectiveKind)
OBJECTIVE_NAMES = {"none": "no MI term", "kl": "KL", "renyi": "Rényi", "power": "power"}

# The estimator of a curve id is any lowercase word here; parse_curve_id accepts the registered ones only.
CURVE_ID = re.compile(r"^(?P<estimator>[a-z]+)(?P<k>\d*)-(?P<objective>kl|renyi|power)(?P<k_mi>\d*)$")
# The PTB curves (ptb_curve_id): ptb-dreg16-kl, ptb-vimco1-kl-valid, ptb-dreg16-renyi-valid-shared,
# ptb-vimco1-kl-t16, ptb-dreg1-kl-batch64, ptb-dreg16-kl-hidden256-steps80k (vimco1 is REINFORCE 1).
PTB_CURVE_ID = re.compile(
    r"^ptb-(?P<estimator>[a-z]+)(?P<k>\d*)-(?P<objective>kl|renyi|power|alpha)(?P<k_mi>\d*)"
    r"(?P<valid>-valid(?:-shared|-l2)?)?(?P<variant>(?:-(?:bs16|t16|batch\d+|hidden\d+|steps\d+k))*)$"
)
PTB_VARIANTS = {"bs16": "bs×16", "t16": "T×16"}  # §7.2.6's compute-matched single-sample baselines
# l40x0-bs256-hs128-t40-dreg16-kl1.tsv, l8x10-...-t40x16-vimco1-renyi.tsv, bs256-hs128-t40-vq-vae.tsv
# The PTB files add the regularisation of validation runs: -valid (naive dropout), -valid-nsd (shared
# dropout masks), -valid-l2 (an L2 penalty); training-fit files have none.
PAPER_NAME = re.compile(
    r"^(?:l(?P<latents>\d+)x(?P<categories>\d+)-)?bs(?P<batch>\d+)-hs(?P<hidden>\d+)-t(?P<steps>\d+)(?:x(?P<times>\d+))?-"
    r"(?:(?P<vq>vq-vae)|(?P<estimator>vae|iwae|dreg|vimco|reinforce)(?P<k>\d*)-(?P<objective>kl|renyi|alpha)(?P<k_mi>\d*))"
    r"(?P<valid>-valid(?P<regulariser>-nsd|-l2)?)?$"
)
PAPER_REGULARISERS = {None: "dropout-naive", "-nsd": "dropout-shared", "-l2": "l2"}  # of -valid files
PAPER_ESTIMATORS = {"vae": "elbo", "iwae": "iwae", "dreg": "dreg", "vimco": "vimco", "reinforce": "reinforce"}
PAPER_OBJECTIVES = {"kl": "kl", "renyi": "renyi", "alpha": "power"}
PAPER_TOKENS = {"elbo": "vae", "kl": "kl", "renyi": "renyi", "power": "alpha"}  # ours -> the paper's


def estimator_names() -> tuple[str, ...]:
    """The estimators a curve or a results row may name: the registered ones and vqvae (which trains its own loss)."""
    return (*BASE_ESTIMATORS, "vqvae")


def estimator_label(estimator: str) -> str:
    """The paper's name of an estimator: "DReG", "REINFORCE", "VQ-VAE"."""
    return "VQ-VAE" if estimator == "vqvae" else estimator_spec(estimator).label


def _curve_match(pattern: re.Pattern, curve_id: str) -> re.Match | None:
    """``pattern``'s match of a curve id whose estimator is registered; None otherwise."""
    match = pattern.match(curve_id)
    return match if match is not None and match["estimator"] in BASE_ESTIMATORS else None


@dataclass(frozen=True)
class Setting:
    """What makes a curve: the base estimator, K, K′ and the objective."""

    estimator: str  # one of estimator_names()
    k: int  # samples of the ln p(x) term
    k_mi: int  # samples of the divergence term (K′)
    objective: str  # one of OBJECTIVES

    @property
    def label(self) -> str:
        """The paper's name: "DReG 16, Rényi", "VIMCO 16/1, KL", "REINFORCE 1, KL", "ELBO, KL", "VQ-VAE"."""
        if self.estimator == "vqvae":
            return "VQ-VAE"
        name = estimator_label(self.estimator)
        if self.estimator != "elbo":
            name += f" {self.k}" if self.k_mi == self.k else f" {self.k}/{self.k_mi}"
        return f"{name}, {OBJECTIVE_NAMES[self.objective]}"

    @property
    def draws(self) -> int:
        """Samples a training step draws: max(K, K′)."""
        return max(self.k, self.k_mi)


def parse_curve_id(curve_id: str) -> Setting:
    """The setting of a curve id (see the module docstring); ValueError naming the pattern otherwise."""
    if curve_id == "vqvae":
        return Setting("vqvae", 1, 1, "none")
    match = _curve_match(CURVE_ID, curve_id) or _curve_match(PTB_CURVE_ID, curve_id)
    if match is None:
        raise ValueError(f"unknown curve {curve_id!r}; curves are named like dreg16-kl, vimco1-renyi16, vqvae, "
                         "ptb-dreg16-kl-valid-shared")  # fmt: skip
    k = int(match["k"] or 1)
    k_mi = int(match["k_mi"] or k)
    estimator = match["estimator"]
    if curve_id.startswith("ptb-") and estimator == "vimco" and k == k_mi == 1:
        estimator = "reinforce"  # the paper's PTB "VIMCO 1" (ptb_curve_id keeps its file's name)
    objective = {"alpha": "power"}.get(match["objective"], match["objective"])
    return Setting(estimator, k, k_mi, objective)


def curve_label(curve_id: str) -> str:
    """The paper's name of a curve: "DReG 16/1, KL", "REINFORCE 1, Rényi", "VQ-VAE"; a PTB curve adds what
    sets it apart in the appendix figures: "REINFORCE 1, KL, T×16", "DReG 16, KL, batch 64, H = 256, 80k steps"
    (its split and regulariser are its figure's, named there)."""
    label = parse_curve_id(curve_id).label
    match = PTB_CURVE_ID.match(curve_id)
    if match is None or not match["variant"]:
        return label
    names = []
    for part in match["variant"].strip("-").split("-"):
        if part in PTB_VARIANTS:
            names.append(PTB_VARIANTS[part])
        elif part.startswith("batch"):
            names.append(f"batch {part[5:]}")
        elif part.startswith("hidden"):
            names.append(f"H = {part[6:]}")
        else:
            names.append(f"{part[5:]} steps")
    return ", ".join([label, *names])


def same_curve_but_objective(curve_a: str, curve_b: str) -> bool:
    """Whether two curve ids differ in their objective only (``ptb-vimco1-kl-t16`` and ``ptb-vimco1-renyi-t16``)."""
    pattern = re.compile(r"-(kl|renyi|power|alpha)(?=\d*(-|$))")
    return pattern.sub("-*", curve_a, count=1) == pattern.sub("-*", curve_b, count=1)


def curve_draws(curve_id: str) -> int:
    """max(K, K′) of a curve: what a training step of its trials costs, relatively."""
    return parse_curve_id(curve_id).draws


def paper_file_name(curve_id: str) -> str:
    """The paper's trial file of a curve: ``dreg16-kl1`` -> ``l40x0-bs256-hs128-t40-dreg16-kl1.tsv``."""
    if curve_id == "vqvae":
        return "bs256-hs128-t40-vq-vae.tsv"
    match = _curve_match(CURVE_ID, curve_id)
    if match is None:
        raise ValueError(f"unknown curve {curve_id!r}; curves are named like dreg16-kl, vimco1-renyi16, vqvae")
    estimator, k = match["estimator"], match["k"]
    latents = "l40x0" if estimator_spec(estimator).reparameterised else "l8x10"  # the paper's Gaussian or categorical
    if estimator == "reinforce" and k == "1":
        estimator = "vimco"  # the paper's files call REINFORCE 1 "vimco1"
    name = PAPER_TOKENS.get(estimator, estimator) + ("" if estimator == "elbo" else k)
    return f"{latents}-bs256-hs128-t40-{name}-{PAPER_TOKENS[match['objective']]}{match['k_mi']}.tsv"


def ptb_curve_id(stem: str) -> str:
    """The study (curve) of one of the paper's PTB trial files, named as params/studies/<profile>/:
    ptb-<estimator><K>-<objective><K'>[-valid[-shared|-l2]][-batchN|-bs16][-hiddenN][-steps80k|-t16]."""
    named = parse_paper_file_name(stem)
    if named is None:
        raise ValueError(f"{stem!r} is not a paper trial file's name (e.g. l40x0-bs256-hs128-t40-dreg16-kl)")
    s = named.setting
    name = {"reinforce": "vimco"}.get(s.estimator, s.estimator) + str(s.k)
    objective = {"power": "alpha"}.get(s.objective, s.objective) + (str(s.k_mi) if s.k_mi != s.k else "")
    parts = ["ptb", name, objective]
    if named.split == "valid":
        parts += ["valid"] + {"dropout-naive": [], "dropout-shared": ["shared"], "l2": ["l2"]}[named.regulariser]
    if named.batch_size == 4096:
        parts.append("bs16")
    elif named.batch_size != 256:
        parts.append(f"batch{named.batch_size}")
    if named.hidden_size != 128:
        parts.append(f"hidden{named.hidden_size}")
    if named.steps == 640_000:
        parts.append("t16")
    elif named.steps != 40_000:
        parts.append(f"steps{named.steps // 1000}k")
    return "-".join(parts)


@dataclass(frozen=True)
class PaperFile:
    """What the name of one of the paper's synthetic trial files says."""

    setting: Setting
    latents: str  # "40 gaussian", "8x10 categorical", "categorical (tuned)" (the VQ-VAE)
    batch_size: int
    hidden_size: int
    steps: int
    split: str = "train"  # PTB: the split of its NLL (train, or valid for -valid files); synthetic: exact
    regulariser: str = "none"  # PTB: none, dropout-naive, dropout-shared or l2


def parse_paper_file_name(stem: str) -> PaperFile | None:
    """The setting of a paper trial file's name (without .tsv); None if it does not follow the pattern.
    The paper's VIMCO 1 (and 1/K′) is read as REINFORCE: without other samples there is no baseline."""
    match = PAPER_NAME.match(stem)
    if match is None:
        return None
    steps = int(match["steps"]) * 1000 * int(match["times"] or 1)
    if match["vq"]:
        setting, latents = Setting("vqvae", 1, 1, "none"), "categorical (tuned)"
    else:
        estimator = PAPER_ESTIMATORS[match["estimator"]]
        k = int(match["k"] or 1)
        if estimator == "vimco" and k == 1:
            estimator = "reinforce"  # the paper's VIMCO 1 is REINFORCE 1
        latents = (
            f"{match['latents']} gaussian"
            if match["categories"] == "0"
            else f"{match['latents']}x{match['categories']} categorical"
        )
        k_mi = int(match["k_mi"]) if match["k_mi"] else k
        setting = Setting(estimator, k, k_mi, PAPER_OBJECTIVES[match["objective"]])
    split, regulariser = ("valid", PAPER_REGULARISERS[match["regulariser"]]) if match["valid"] else ("train", "none")
    return PaperFile(setting, latents, int(match["batch"]), int(match["hidden"]), steps, split, regulariser)
