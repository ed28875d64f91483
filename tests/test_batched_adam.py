"""The batched Adam against torch.optim.Adam, trial by trial: bit for bit for every trial it updates, on its one
in-place path whether trials are masked or not, and a skipped trial's parameters and moments untouched even when
its gradient is NaN (issue 31: the masked path ran on every GPU step as new tensors and three torch.where)."""

import math

import pytest
import torch
from torch import nn

from micmco.batched.adam import BatchedAdam

SHAPES = {"weight": (5, 3), "bias": (5,)}
LRS = [1e-3, 3e-3, 1e-2, 2e-4]


def _singles_and_batch(N: int, seed: int = 0):
    torch.manual_seed(seed)
    singles = [{name: nn.Parameter(torch.randn(shape)) for name, shape in SHAPES.items()} for _ in range(N)]
    stacked = {name: nn.Parameter(torch.stack([s[name].detach() for s in singles])) for name in SHAPES}
    optimisers = [
        torch.optim.Adam(list(s.values()), lr=lr, betas=(0.9, 0.999), eps=1e-8) for s, lr in zip(singles, LRS)
    ]
    return singles, optimisers, stacked, BatchedAdam(stacked, LRS[:N], (0.9, 0.999), 1e-8)


@pytest.mark.parametrize("how", ["all active", "some inactive", "finite mask", "NaN gradient of a skipped trial"])
def test_updated_trials_equal_torch_adam_bit_for_bit_and_skipped_ones_stay(how):
    N = 4
    singles, optimisers, stacked, batched = _singles_and_batch(N)
    for step in range(6):
        grads = {name: torch.randn((N, *shape)) for name, shape in SHAPES.items()}
        active, finite = [True] * N, None
        if how == "some inactive":
            active = [True, step % 2 == 0, True, False]
        elif how == "finite mask":  # a trial whose loss is not finite diverges: inactive from then on
            finite = torch.tensor([True, True, step != 2, True])
            active = [True, True, step < 2, True]
        elif how == "NaN gradient of a skipped trial":
            finite = torch.tensor([True, False, True, True])
            for g in grads.values():
                g[1] = math.nan
        updated = [a and (finite is None or bool(finite[n])) for n, a in enumerate(active)]
        before = {name: (p.detach().clone(), batched.exp_avg[name].clone(), batched.exp_avg_sq[name].clone())
                  for name, p in stacked.items()}  # fmt: skip
        for name, p in stacked.items():
            p.grad = grads[name].clone()
        batched.step(active, finite)
        for n in range(N):
            if updated[n]:
                for name, p in singles[n].items():
                    p.grad = grads[name][n].clone()
                optimisers[n].step()
            for name, p in singles[n].items():
                assert torch.equal(stacked[name][n], p.detach()), (how, step, n, name)
            if not updated[n]:
                for name in SHAPES:
                    param, avg, avg_sq = before[name]
                    assert torch.equal(stacked[name][n], param[n])
                    assert torch.equal(batched.exp_avg[name][n], avg[n])
                    assert torch.equal(batched.exp_avg_sq[name][n], avg_sq[n])
    for n in range(N):
        state = batched.trial_state_dict(n, nn.ParameterList(list(singles[n].values())))
        reference = optimisers[n].state_dict()
        for index in reference["state"]:
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(state["state"][index][key], reference["state"][index][key])
            assert float(state["state"][index]["step"]) == float(reference["state"][index]["step"])
