"""The synthetic task (micmco.tasks.synthetic) beyond the contract of every task (tests/test_tasks.py)."""

import math
from pathlib import Path

from micmco.runconfig import load_config

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"


def test_an_nll_ten_times_the_uniform_models_is_diverged():
    from micmco.tasks.synthetic import TASK

    config = load_config(SMOKE / "elbo-kl.yaml", ["data.vocab_size=200"])
    ln_v = math.log(200)
    reason, _ = TASK.plausibility({"nll": 164.0, "mutual_information": 5.0, "optimal_nll": ln_v}, config)
    assert reason and "more than 10 times the uniform model's ln V = 5.2983" in reason
    assert TASK.plausibility({"nll": 9 * ln_v, "mutual_information": 5.0, "optimal_nll": ln_v}, config)[0] is None
