"""Configs: strict YAML mapping, clear errors naming the key, overrides, and the params/ files."""

from pathlib import Path

import pytest
import yaml

from micmco.cli import main
from micmco.config import ConfigError, apply_overrides, from_dict
from micmco.evaluation import EvalConfig
from micmco.gradients import EstimatorConfig
from micmco.latents import LatentConfig
from micmco.models import SentenceModelConfig
from micmco.objectives import Objective, ObjectiveConfig, ObjectiveKind
from micmco.runconfig import fingerprint, load_config
from micmco.tasks.synthetic import SyntheticRunConfig
from micmco.trainer import TrainerConfig

REPO = Path(__file__).resolve().parents[1]
PARAMS = sorted((REPO / "params" / "synthetic").rglob("*.yaml")) + sorted(
    (REPO / "params" / "ptb").rglob("*.yaml")
)  # run configs; params/book and params/studies differ
SMOKE = REPO / "params" / "synthetic" / "smoke" / "vimco16-renyi.yaml"


def smoke_dict():
    return yaml.safe_load(SMOKE.read_text())


def load(overrides):
    return from_dict(SyntheticRunConfig, apply_overrides(smoke_dict(), overrides))


@pytest.mark.parametrize(
    "overrides, key, message",
    [
        (["learning_rate=0.1"], "learning_rate", "unknown key"),
        (["train.learning_rat=0.1"], "train.learning_rat", "valid keys here: steps, learning_rate"),
        (["objective.lam=1.0"], "objective.lam", "must be a finite number below 1"),
        (["objective.lam=2.5"], "objective.lam", "must be a finite number below 1"),
        (["objective.lam=high"], "objective.lam", "must be a number, got str"),
        (["objective.alpha=0"], "objective.alpha", "must be > 0"),
        (["objective.alpha=-2"], "objective.alpha", "must be > 0"),
        (["objective.kind=renyii"], "objective.kind", "valid choices: none, kl, renyi, power"),
        (["objective.kind=kl"], "objective.alpha", "no effect on the kl objective"),
        (["estimator.num_samples=0"], "estimator.num_samples", "must be >= 1"),
        (["estimator.num_samples=2.5"], "estimator.num_samples", "must be an integer, got float"),
        (["estimator.num_samples=1"], "estimator.num_samples", "vimco needs at least 2 samples"),
        (["estimator.base=dreg"], "estimator.base", "categorical latents"),
        (["estimator.base=vimcoo"], "estimator.base", "valid choices: elbo, iwae, stl, dreg, reinforce, vimco"),
        (["train.steps=0"], "train.steps", "must be >= 1"),
        (["train.device=tpu"], "train.device", "valid choices: auto, cpu, cuda, cuda:N"),
        (["train.mixed_precision=maybe"], "train.mixed_precision", "must be a boolean"),
        (["data.vocab_size=1"], "data.vocab_size", "must be >= 2"),
        (["model.latent.kind=gaussian"], "model.latent.num_categories", "categorical latents only"),
        (["model.vq.decay=0.9"], "model.vq", "applies to kind vqvae only"),
        (["profile=fast"], "profile", "valid choices: smoke, cpu, paper, custom"),
        (["eval.num_samples=0"], "eval.num_samples", "must be >= 1"),
        (["train=3"], "train", "expected a mapping"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(overrides, key, message):
    with pytest.raises(ConfigError, match=message) as error:
        load(overrides)
    assert error.value.key == key


def test_missing_and_misplaced_sections():
    data = smoke_dict()
    del data["objective"]
    with pytest.raises(ConfigError, match="required for model kind vae"):
        from_dict(SyntheticRunConfig, data)
    data = smoke_dict()
    del data["name"]
    with pytest.raises(ConfigError, match="name: required key is missing"):
        from_dict(SyntheticRunConfig, data)
    vq = yaml.safe_load((REPO / "params/synthetic/smoke/vqvae.yaml").read_text())
    vq["objective"] = {"kind": "kl", "lam": 0.5}
    with pytest.raises(ConfigError, match="vqvae trains its own loss"):
        from_dict(SyntheticRunConfig, vq)


def test_overrides_parse_yaml_scalars_and_nest():
    config = load(["objective.lam=0.25", "train.steps=7", "model.latent.num_latents=3", "train.device=cpu"])
    assert config.objective.lam == 0.25 and config.train.steps == 7
    assert config.model.latent.num_latents == 3 and config.train.device == "cpu"
    assert load(["train.learning_rate=1e-3"]).train.learning_rate == 1e-3  # PyYAML reads 1e-3 as a string
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        apply_overrides({}, ["objective.lam"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_the_paper_optimizer_is_the_default():
    train = load([]).train
    assert (train.adam_beta1, train.adam_beta2, train.adam_eps) == (0.0, 0.999, 1e-8)


def test_fingerprint_ignores_output_dir_and_progress_but_not_results():
    base = fingerprint(load([]))
    assert fingerprint(load(["output_dir=/elsewhere", "train.progress=false"])) == base
    assert fingerprint(load(["objective.lam=0.31"])) != base
    assert fingerprint(load(["seed=1"])) != base


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: str(p.relative_to(REPO / "params")))
def test_every_params_file_is_valid_and_documented(path):
    config = load_config(path)
    profile = path.parent.name
    assert config.profile == profile
    assert config.reproduces.startswith(("Figure", "Table")), "say which paper figure or table it reproduces"
    assert config.cost, "say what it costs"
    assert config.name == f"{profile}-{path.stem}"
    assert path.read_text().startswith("#"), "open with a comment describing the run"
    ptb = config.task == "ptb"
    if profile == "smoke":
        assert config.train.steps <= 500 and config.data.vocab_size <= (500 if ptb else 100)
    if profile == "cpu" and ptb:  # the cpu PTB trials: vocabulary 2000, hidden 64; 480 sentences (training fit)
        sentences = 3200 if path.stem.startswith("ptb-valid-") else 480  # or 3200 (validation: 10 passes)
        assert (config.data.vocab_size, config.data.train_sentences, config.model.hidden_size) == (2000, sentences, 64)
    elif profile == "cpu":  # sweep trials (trial-*: V = 200, about a minute) and the laptop single runs (V = 1000)
        assert config.data.vocab_size == (200 if path.stem.startswith("trial-") else 1000)
    if profile == "paper":
        assert (config.data.vocab_size, config.data.batch_size, config.model.hidden_size) == (10000, 256, 128)
        assert config.train.steps == 40000


def test_required_params_sets_exist():
    names = {"vimco16-renyi", "reinforce1-kl", "dreg16-renyi", "dreg1-kl", "elbo-kl"}
    for profile in ("smoke", "cpu", "paper"):
        assert names <= {p.stem for p in (REPO / "params/synthetic" / profile).glob("*.yaml")}


def test_cli_rejects_a_bad_config_before_any_work(tmp_path, capsys):
    code = main(["train", str(SMOKE), "--set", "objective.alpha=-1", "--output-dir", str(tmp_path)])
    assert code == 2
    assert "objective.alpha: must be > 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert main(["check", str(SMOKE)]) == 0


@pytest.mark.parametrize(
    "build, key, message",
    [
        (lambda: SentenceModelConfig(latent="gaussian"), "latent", "LatentConfig"),
        (lambda: SentenceModelConfig(hidden_size="32"), "hidden_size", "integer"),
        (lambda: SentenceModelConfig(hidden_size=True), "hidden_size", "integer"),
        (lambda: Objective("kl", lam="0.5"), "lam", "a number"),
        (lambda: Objective(3), "kind", "valid choices: none, kl"),
        (lambda: ObjectiveConfig("kl", lam="0.5"), "lam", "a number"),
        (lambda: EstimatorConfig(num_samples=2.0), "num_samples", "integer"),
        (lambda: TrainerConfig(learning_rate="1e-3"), "learning_rate", "number"),
        (lambda: TrainerConfig(progress=1), "progress", "a boolean"),
        (lambda: EvalConfig(split=None), "split", "a string"),
        (lambda: LatentConfig(num_latents=4.0), "num_latents", "integer or None"),
        (lambda: SyntheticRunConfig(name="x", train={"steps": 3}), "train", "a TrainerConfig"),
    ],
)
def test_configs_built_in_python_reject_wrong_types_naming_the_field(build, key, message):
    with pytest.raises(ConfigError, match=message) as error:
        build()
    assert error.value.key == key and str(error.value).startswith(f"{key}: must be")


def test_configs_built_in_python_accept_what_from_dict_produces_and_store_floats():
    assert Objective("renyi", lam=0.5, alpha=2).alpha == 2.0 and isinstance(Objective("renyi", 0, 2).alpha, float)
    assert Objective(ObjectiveKind.KL, lam=0.5).kind is ObjectiveKind.KL
    # an int where a float goes is stored as the float from_dict makes of it: equal configs, one fingerprint
    assert TrainerConfig(learning_rate=1) == from_dict(TrainerConfig, {"learning_rate": 1})
    assert isinstance(TrainerConfig(learning_rate=1).learning_rate, float)
    assert ObjectiveConfig("kl", lam=0) == from_dict(ObjectiveConfig, {"kind": "kl", "lam": 0})
    assert fingerprint(load([])) == fingerprint(from_dict(SyntheticRunConfig, smoke_dict()))


def _config_file(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_yaml_is_read_with_a_safe_loader_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _config_file(tmp_path, "name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()
