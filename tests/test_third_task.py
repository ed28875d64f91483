"""A third task defined entirely here, as evidence that a new task is a model, a task and a config: a biased
coin (a Bernoulli datum, heads with probability p) and a tiny VAE. Registered through a fixture, it keeps
the contract of every task (tests/test_tasks.py) and trains through the normal hub; its results row reads
back through the results reader and the frontier code, and nothing outside this file knows of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from test_tasks import CONTRACT, QUICK
from torch import Tensor, nn

from micmco import pareto
from micmco.config import apply_overrides, check, check_types
from micmco.evaluation import tensor_batches
from micmco.experiment import run
from micmco.latents import LatentConfig, make_latent
from micmco.memory import MemoryEstimate
from micmco.results import format_table, read_rows, result_row
from micmco.runconfig import RunConfig, config_from_dict
from micmco.tasks import TASKS, Task, register_task
from micmco.tasks.base import check_trained_by_estimator

POINTS = 100  # the evaluation split: heads and tails in the exact proportions p : 1 - p


@dataclass
class CoinDataConfig:
    p_heads: float = 0.8  # probability of heads (1); POINTS * p_heads must be a whole number
    batch_size: int = 32  # flips per training batch

    def __post_init__(self) -> None:
        check_types(self)
        check(0 < self.p_heads < 1 and (POINTS * self.p_heads).is_integer(), "p_heads", f"got {self.p_heads}")


@dataclass
class CoinModelConfig:
    hidden_size: int = 8  # the encoder's and decoder's hidden layer
    latent: LatentConfig = field(default_factory=lambda: LatentConfig(num_latents=2))  # the latent space


@dataclass
class CoinRunConfig(RunConfig):
    data: CoinDataConfig = field(default_factory=CoinDataConfig)  # the flips
    model: CoinModelConfig = field(default_factory=CoinModelConfig)  # the VAE

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.task == "coin", "task", f"a coin run config has task: coin, got {self.task!r}")
        check_trained_by_estimator(self, True, self.model.latent.kind, "")


class CoinVAE(nn.Module):
    """q(z|x) from an embedding of the flip; p(x|z) a softmax over heads and tails."""

    def __init__(self, config: CoinModelConfig):
        super().__init__()
        H, self.latent = config.hidden_size, make_latent(config.latent)
        self.encoder = nn.Sequential(nn.Embedding(2, H), nn.Tanh(), nn.Linear(H, self.latent.proposal_size))
        self.decoder = nn.Sequential(nn.Linear(self.latent.dim, H), nn.Tanh(), nn.Linear(H, 2))

    def proposal(self, x: Tensor):
        return self.latent.proposal(self.encoder(x))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """ln p(x|z) [K, B] for flips x [B] and samples z [K, B, D]."""
        log_p = torch.log_softmax(self.decoder(z), -1)
        return log_p.gather(-1, x.expand(len(z), -1).unsqueeze(-1)).squeeze(-1)


def seeded(seed: int, stream: int, step: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_003 + step)


class CoinTask(Task):
    name = "coin"
    config_class = CoinRunConfig
    unit = data_point = "flip"
    splits = ("valid",)
    result_columns = curve_columns = ("p_heads",)

    def training_data(self, config: CoinRunConfig):
        p, size = config.data.p_heads, config.data.batch_size
        return lambda step: (torch.rand(size, generator=seeded(config.seed, 1, step)) < p).long()

    def evaluation_batches(self, config: CoinRunConfig, split: str):
        heads = round(POINTS * config.data.p_heads)
        flips = torch.cat([torch.ones(heads, dtype=torch.long), torch.zeros(POINTS - heads, dtype=torch.long)])
        return tensor_batches(flips, config.eval.batch_size)

    def split_units(self, config: CoinRunConfig, split: str) -> int:
        return POINTS

    def build_model(self, config: CoinRunConfig) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeded(config.seed, 2).initial_seed())
            return CoinVAE(config.model)

    def reference_nll(self, config: CoinRunConfig) -> float:
        p = config.data.p_heads
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))  # the coin's entropy

    def uniform_nll(self, config: CoinRunConfig) -> float:
        return math.log(2)

    def result_values(self, config: dict[str, Any]) -> dict[str, str]:
        return {"p_heads": f"{config['data']['p_heads']:g}"}

    def estimate_memory(self, config: CoinRunConfig, device="cpu") -> MemoryEstimate:
        return MemoryEstimate(parameters=100, train_bytes=2**20, eval_bytes=2**20)  # a few hundred floats


COIN = {
    "name": "coin-elbo-kl",
    "task": "coin",
    "profile": "smoke",
    "data": {"p_heads": 0.8, "batch_size": 32},
    "estimator": {"base": "elbo", "num_samples": 1},
    "objective": {"kind": "kl", "lam": 0.5},
    "train": {"steps": 30, "learning_rate": 0.01, "log_every": 10, "checkpoint_every": 10, "progress": False},
    "eval": {"num_samples": 10, "batch_size": 50},
}


@pytest.fixture
def coin():
    """The coin task in micmco.tasks.TASKS for one test."""
    task = CoinTask()
    register_task(task)
    yield task
    del TASKS[task.name]


@pytest.mark.parametrize("check", CONTRACT, ids=lambda check: check.__name__.removeprefix("check_"))
def test_the_coin_task_keeps_the_contract(coin, check, tmp_path):
    check(coin, config_from_dict(apply_overrides(COIN, QUICK)), tmp_path)


def test_the_coin_trains_through_the_hub_and_reads_back_as_a_curve(coin, tmp_path):
    config = config_from_dict({**COIN, "output_dir": str(tmp_path / "runs")})
    record = run(config, echo=lambda *_: None)
    assert record["status"] == "complete" and record["evaluation"]["unit"] == "flip"
    metrics = record["metrics"]
    assert metrics["optimal_nll"] == pytest.approx(coin.reference_nll(config))
    row = result_row(record["config"], record, record["status"], "", 1.0, "run", 1, "abc") | {"trial": 0}
    table = tmp_path / "results" / "smoke-coin-elbo-kl.tsv"
    table.parent.mkdir()
    table.write_text(format_table([row], "coin"))
    (read,) = read_rows(table)
    assert (read.task, read.split, read.task_values, read.setting_label) == ("coin", "valid", {"p_heads": "0.8"},
                                                                             "p_heads 0.8")  # fmt: skip
    (curve,) = pareto.curves_of([read], table)
    assert curve.nll.tolist() == [pytest.approx(metrics["nll"], abs=1e-6)]
    assert curve.reference_nll == coin.reference_nll(config) and curve.uniform_nll == math.log(2)
    normalised = curve.normalised()  # a known optimum: the frontier code normalises by it
    assert normalised.nll.tolist() == [pytest.approx(metrics["nll"] - coin.reference_nll(config), abs=1e-6)]
    assert "(ours, valid, p_heads 0.8)" in pareto.distinct_labels([curve])[0]
    assert pareto.read_inputs([table.parent])[0].task == "coin"


def test_an_unregistered_task_is_refused_by_name():
    from micmco.config import ConfigError

    with pytest.raises(ConfigError, match="unknown task 'coin'; valid choices: synthetic, ptb"):
        config_from_dict(COIN)
