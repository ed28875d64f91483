"""Adam for N trials' stacked parameters: per-trial learning rates and step counts, updates masked per trial.

At N = 1 it computes what ``torch.optim.Adam`` computes on a CPU (its single-tensor path, the default there),
bit for bit: the same operations in the same order, with each trial's Python scalars (the step size
lr / (1 - β1^t), the bias correction √(1 - β2^t)) computed in double precision and rounded once, as the
single path rounds them. A trial that is not active (diverged, or waiting to catch up) keeps its
parameters and moments unchanged, whatever its gradient holds: NaN never reaches its or another's state.
States convert to and from ``torch.optim.Adam`` state dicts, so a trial's checkpoint is a single run's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BatchedAdam"]


class BatchedAdam:
    def __init__(
        self,
        parameters: dict[str, nn.Parameter],
        learning_rates: Sequence[float],
        betas: tuple[float, float],
        eps: float,
    ):
        self.parameters = parameters  # name -> [N, ...], in the order of the single model's parameters()
        self.learning_rates = [float(lr) for lr in learning_rates]
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = [0] * len(self.learning_rates)  # completed updates per trial (Adam's bias corrections)
        self.exp_avg = {name: torch.zeros_like(p) for name, p in parameters.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in parameters.items()}

    def zero_grad(self) -> None:
        for p in self.parameters.values():
            p.grad = None

    @torch.no_grad()
    def step(self, active: Sequence[bool]) -> None:
        """One update of the ``active`` trials (a bool per trial); the others are left exactly as they are."""
        N = len(self.learning_rates)
        device = next(iter(self.parameters.values())).device
        steps = [s + 1 for s in self.steps]  # inactive trials' values are computed and discarded
        neg_step_size = [-(lr / (1 - self.beta1**t)) for lr, t in zip(self.learning_rates, steps)]
        bias_correction2_sqrt = [(1 - self.beta2**t) ** 0.5 for t in steps]
        mask = torch.tensor(list(active), dtype=torch.bool, device=device)
        for name, param in self.parameters.items():
            grad = param.grad
            if grad is None:
                continue
            shape = (N,) + (1,) * (param.dim() - 1)
            neg = torch.tensor(neg_step_size, dtype=torch.float64).to(param.dtype).to(device).view(shape)
            correction = torch.tensor(bias_correction2_sqrt, dtype=torch.float64).to(param.dtype).to(device).view(shape)
            keep = mask.view(shape)
            exp_avg = self.exp_avg[name].lerp(grad, 1 - self.beta1)
            exp_avg_sq = self.exp_avg_sq[name].mul(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (exp_avg_sq.sqrt() / correction).add_(self.eps)
            updated = param + neg * exp_avg / denom  # addcdiv's order: self + (value * t1) / t2
            param.copy_(torch.where(keep, updated, param))
            self.exp_avg[name] = torch.where(keep, exp_avg, self.exp_avg[name])
            self.exp_avg_sq[name] = torch.where(keep, exp_avg_sq, self.exp_avg_sq[name])
        self.steps = [t if on else s for t, s, on in zip(steps, self.steps, active)]

    # --- torch.optim.Adam state dicts of single trials --------------------------------------------

    def load_trial(self, trial: int, state_dict: dict) -> None:
        """Trial ``trial``'s moments and step from a ``torch.optim.Adam`` state dict of the single model."""
        states = state_dict["state"]
        steps = set()
        for index, name in enumerate(self.parameters):
            state = states.get(index)
            if state is None:  # a parameter never updated: Adam's lazy zeros
                continue
            self.exp_avg[name][trial] = state["exp_avg"]
            self.exp_avg_sq[name][trial] = state["exp_avg_sq"]
            steps.add(int(float(state["step"])))
        self.steps[trial] = steps.pop() if steps else 0

    def trial_state_dict(self, trial: int, model: nn.Module) -> dict:
        """Trial ``trial``'s state as ``torch.optim.Adam(model.parameters(), ...).state_dict()`` of the single
        ``model`` (whose parameters, in order, are this optimiser's names) would give it."""
        optimizer = torch.optim.Adam(
            model.parameters(), lr=self.learning_rates[trial], betas=(self.beta1, self.beta2), eps=self.eps
        )
        if self.steps[trial]:
            for param, name in zip(model.parameters(), self.parameters):
                optimizer.state[param] = {
                    "step": torch.tensor(float(self.steps[trial]), dtype=torch.float32),
                    "exp_avg": self.exp_avg[name][trial].detach().cpu().clone(),
                    "exp_avg_sq": self.exp_avg_sq[name][trial].detach().cpu().clone(),
                }
        return optimizer.state_dict()
