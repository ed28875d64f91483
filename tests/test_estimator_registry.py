"""The estimator registry (micmco.gradients.BASE_ESTIMATORS): the built-in entries, curve ids read through it, and
a throwaway estimator that is one function and one entry."""

import re
from pathlib import Path

import pytest

import micmco.gradients as gradients
from micmco import naming
from micmco.book.registry import SYNTHETIC_FIGURES, ptb_figures
from micmco.config import ConfigError
from micmco.experiment import run
from micmco.gradients import BASE_ESTIMATORS, BaseEstimator, EstimatorSpec, estimator_spec, register_estimator
from micmco.naming import Setting
from micmco.runconfig import load_config
from micmco.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


def test_the_built_in_estimators_are_the_enum_in_its_order_with_the_papers_labels():
    assert list(BASE_ESTIMATORS)[: len(BaseEstimator)] == [member.value for member in BaseEstimator]
    labels = {name: spec.label for name, spec in BASE_ESTIMATORS.items()}
    assert labels == {"elbo": "ELBO", "iwae": "IWAE", "stl": "STL", "dreg": "DReG", "reinforce": "REINFORCE",
                      "vimco": "VIMCO"}  # fmt: skip
    assert [name for name, spec in BASE_ESTIMATORS.items() if not spec.reparameterised] == ["reinforce", "vimco"]
    assert estimator_spec(BaseEstimator.VIMCO).min_samples == 2 and estimator_spec("stl").max_samples == 1
    with pytest.raises(ValueError, match="valid choices: elbo, iwae, stl, dreg, reinforce, vimco"):
        estimator_spec("vimcoo")


# --- curve ids parse as they did when naming listed the estimators by hand -----------------------------------

# naming's patterns before the registry (commit 51861d5), with parse_curve_id's rules of that time.
HAND_CURVE_ID = re.compile(
    r"^(?P<estimator>elbo|iwae|dreg|reinforce|vimco)(?P<k>\d*)-(?P<objective>kl|renyi|power)(?P<k_mi>\d*)$"
)
HAND_PTB_CURVE_ID = re.compile(
    r"^ptb-(?P<estimator>elbo|iwae|dreg|reinforce|vimco)(?P<k>\d*)-(?P<objective>kl|renyi|power|alpha)(?P<k_mi>\d*)"
    r"(?P<valid>-valid(?:-shared|-l2)?)?(?P<variant>(?:-(?:bs16|t16|batch\d+|hidden\d+|steps\d+k))*)$"
)


def hand_parse(curve_id: str) -> Setting | None:
    if curve_id == "vqvae":
        return Setting("vqvae", 1, 1, "none")
    match = HAND_CURVE_ID.match(curve_id) or HAND_PTB_CURVE_ID.match(curve_id)
    if match is None:
        return None
    k = int(match["k"] or 1)
    k_mi = int(match["k_mi"] or k)
    estimator = match["estimator"]
    if curve_id.startswith("ptb-") and estimator == "vimco" and k == k_mi == 1:
        estimator = "reinforce"
    return Setting(estimator, k, k_mi, {"alpha": "power"}.get(match["objective"], match["objective"]))


def existing_curve_ids() -> list[str]:
    ids = {curve for _, curves in SYNTHETIC_FIGURES.values() for curve in curves}
    ids |= {curve for _, curves in ptb_figures().values() for curve in curves}
    ids |= {path.stem for path in (REPO / "params" / "studies").glob("*/*.yaml")}
    return sorted(ids)


def test_every_existing_curve_id_parses_as_before():
    ids = existing_curve_ids()
    assert len(ids) > 100
    unparsed = []
    for curve_id in ids:
        before = hand_parse(curve_id)
        if before is None:
            with pytest.raises(ValueError, match="unknown curve"):
                naming.parse_curve_id(curve_id)
            unparsed.append(curve_id)
        else:
            assert naming.parse_curve_id(curve_id) == before, curve_id
    # the synthetic compute-matched studies name no curve (naming has no synthetic variants): as before
    assert set(unparsed) <= {"dreg1-kl-bs16", "dreg1-kl-t16", "reinforce1-kl-t16"}


# Pinned from the code before the registry: (estimator, K, K', objective), the label, the paper's file.
PINNED = {
    "elbo-kl": (("elbo", 1, 1, "kl"), "ELBO, KL", "l40x0-bs256-hs128-t40-vae-kl.tsv"),
    "iwae64-renyi": (("iwae", 64, 64, "renyi"), "IWAE 64, Rényi", "l40x0-bs256-hs128-t40-iwae64-renyi.tsv"),
    "dreg16-kl1": (("dreg", 16, 1, "kl"), "DReG 16/1, KL", "l40x0-bs256-hs128-t40-dreg16-kl1.tsv"),
    "dreg1-renyi16": (("dreg", 1, 16, "renyi"), "DReG 1/16, Rényi", "l40x0-bs256-hs128-t40-dreg1-renyi16.tsv"),
    "dreg16-power": (("dreg", 16, 16, "power"), "DReG 16, power", "l40x0-bs256-hs128-t40-dreg16-alpha.tsv"),
    "reinforce1-kl": (("reinforce", 1, 1, "kl"), "REINFORCE 1, KL", "l8x10-bs256-hs128-t40-vimco1-kl.tsv"),
    "vimco16-renyi1": (("vimco", 16, 1, "renyi"), "VIMCO 16/1, Rényi", "l8x10-bs256-hs128-t40-vimco16-renyi1.tsv"),
    "vimco1-kl16": (("vimco", 1, 16, "kl"), "VIMCO 1/16, KL", "l8x10-bs256-hs128-t40-vimco1-kl16.tsv"),
    "vqvae": (("vqvae", 1, 1, "none"), "VQ-VAE", "bs256-hs128-t40-vq-vae.tsv"),
    "ptb-dreg16-kl": (("dreg", 16, 16, "kl"), "DReG 16, KL", None),
    "ptb-vimco1-kl-valid": (("reinforce", 1, 1, "kl"), "REINFORCE 1, KL", None),
    "ptb-vimco1-kl16": (("vimco", 1, 16, "kl"), "VIMCO 1/16, KL", None),
    "ptb-vimco16-renyi-valid-shared": (("vimco", 16, 16, "renyi"), "VIMCO 16, Rényi", None),
    "ptb-dreg16-alpha": (("dreg", 16, 16, "power"), "DReG 16, power", None),
    "ptb-vimco1-renyi-t16": (("reinforce", 1, 1, "renyi"), "REINFORCE 1, Rényi, T×16", None),
    "ptb-dreg1-kl-batch64": (("dreg", 1, 1, "kl"), "DReG 1, KL, batch 64", None),
    "ptb-dreg16-kl-hidden256-steps80k": (("dreg", 16, 16, "kl"), "DReG 16, KL, H = 256, 80k steps", None),
}


@pytest.mark.parametrize("curve_id", PINNED)
def test_pinned_curve_ids(curve_id):
    setting, label, paper_file = PINNED[curve_id]
    assert naming.parse_curve_id(curve_id) == Setting(*setting)
    assert naming.curve_label(curve_id) == label
    if paper_file is None:
        with pytest.raises(ValueError, match="unknown curve"):
            naming.paper_file_name(curve_id)
    else:
        assert naming.paper_file_name(curve_id) == paper_file


def test_stl_has_curve_ids_and_unknown_estimators_none():
    assert naming.parse_curve_id("stl1-kl") == Setting("stl", 1, 1, "kl")
    assert naming.curve_label("ptb-stl1-renyi-valid") == "STL 1, Rényi"
    for curve_id in ("vae16-kl", "ptb16-kl", "ptb-vae16-kl", "dreg16-alpha", "dreg16-kl-bs16"):
        with pytest.raises(ValueError, match="unknown curve"):
            naming.parse_curve_id(curve_id)
    assert naming.estimator_names() == ("elbo", "iwae", "stl", "dreg", "reinforce", "vimco", "vqvae")
    assert [naming.estimator_label(name) for name in ("dreg", "reinforce", "vqvae")] == ["DReG", "REINFORCE", "VQ-VAE"]


# --- a throwaway estimator is one function and one registry entry --------------------------------------------


def toy(objective, latent, proposal, log_likelihood, generator=None):
    """A throwaway estimator: IWAE's surrogate under another name."""
    return gradients.iwae(objective, latent, proposal, log_likelihood, generator)


@pytest.fixture
def toy_estimator():
    """Registers "toy" for one test, and removes it afterwards."""
    spec = register_estimator(EstimatorSpec("toy", toy, "Toy", reparameterised=True))
    yield spec
    del BASE_ESTIMATORS[spec.name]


def test_a_registered_estimator_trains_through_the_normal_path_and_has_curve_ids(toy_estimator, tmp_path):
    smoke = REPO / "params" / "synthetic" / "smoke" / "dreg16-renyi.yaml"
    tiny = [f"output_dir={tmp_path}", "estimator.num_samples=2", "train.steps=4", "train.log_every=2",
            "train.checkpoint_every=2", "train.progress=false", "eval.num_samples=2"]  # fmt: skip
    records = {base: run(load_config(smoke, [f"estimator.base={base}", *tiny]), echo=lambda message: None)
               for base in ("toy", "iwae")}  # fmt: skip
    assert records["toy"]["status"] == "complete" and records["toy"]["config"]["estimator"]["base"] == "toy"
    assert records["toy"]["metrics"] == records["iwae"]["metrics"]  # the same surrogate: the same numbers
    assert records["toy"]["train_history"] == records["iwae"]["train_history"]
    # the rest of the package knows it too: curve ids and labels, config checks, memory estimates
    assert naming.parse_curve_id("toy16-kl1") == Setting("toy", 16, 1, "kl")
    assert naming.curve_label("ptb-toy4-renyi-valid") == "Toy 4, Rényi"
    with pytest.raises(ConfigError, match="toy needs reparameterised samples"):
        load_config(smoke, ["estimator.base=toy", "model.latent.kind=categorical", "model.latent.num_categories=10"])
    assert get_task("synthetic").estimate_memory(load_config(smoke, ["estimator.base=toy"])).train_bytes > 0


def test_estimator_names_must_fit_curve_ids(toy_estimator):
    for name in ("toy", "dreg", "vqvae", "toy2", "Toy", "my-toy"):
        with pytest.raises(ValueError, match="estimator name"):
            register_estimator(EstimatorSpec(name, toy, "Toy", reparameterised=True))
