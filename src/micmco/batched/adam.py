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
from torch import Tensor, nn

__all__ = ["BatchedAdam", "host_to_device"]


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
    def step(self, active: Sequence[bool], finite: Tensor | None = None) -> None:
        """One update of the ``active`` trials (a bool per trial) whose ``finite`` entry (a bool tensor [N] on the
        parameters' device, e.g. of finite losses: read there, no host synchronisation) is true; every other
        trial is left exactly as it is, whatever its gradient holds.

        One path, in place, for every case: a trial that is not updated gets a zero gradient (NaN or not) and
        per-trial coefficients that make each of Adam's operations the identity on its slice (lerp weight 0,
        β2 1, step size 0, its update term zeroed), so the same in-place operations as ``torch.optim.Adam``'s
        run on every parameter (about seven passes) instead of new tensors and three ``torch.where``."""
        N = len(self.learning_rates)
        first = next(iter(self.parameters.values()))
        steps = [s + 1 for s in self.steps]  # inactive trials' values are computed and discarded
        neg_step = _on(first, [-(lr / (1 - self.beta1**t)) for lr, t in zip(self.learning_rates, steps)])
        correction = _on(first, [(1 - self.beta2**t) ** 0.5 for t in steps])
        masked = finite is not None or not all(active)
        if masked:
            keep = host_to_device(torch.tensor(list(active), dtype=torch.bool), first.device)
            keep = keep if finite is None else keep & finite  # [N]
            skip = ~keep
            weight1 = torch.where(keep, _on(first, [1 - self.beta1] * N), 0.0)  # lerp weight: 0 keeps exp_avg
            beta2 = torch.where(keep, _on(first, [self.beta2] * N), 1.0)  # 1 keeps exp_avg_sq (its grad is 0)
            neg_step = torch.where(keep, neg_step, 0.0)
        for name, param in self.parameters.items():
            grad = param.grad
            if grad is None:
                continue
            shape = (N,) + (1,) * (param.dim() - 1)
            neg, bias_correction2_sqrt = neg_step.view(shape), correction.view(shape)
            exp_avg, exp_avg_sq = self.exp_avg[name], self.exp_avg_sq[name]
            if masked:
                grad = grad.masked_fill(skip.view(shape), 0.0)  # a skipped trial's NaN never reaches a moment
                exp_avg.lerp_(grad, weight1.view(shape))
                exp_avg_sq.mul_(beta2.view(shape)).addcmul_(grad, grad, value=1 - self.beta2)
            else:  # torch.optim.Adam's operations, with its scalars
                exp_avg.lerp_(grad, 1 - self.beta1)
                exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            update = neg * exp_avg / denom  # addcdiv's order: self + (value * t1) / t2
            if masked:
                update.masked_fill_(skip.view(shape), 0.0)  # 0 · (a moment of a trial that diverged) may be NaN
            param.add_(update)
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


def _on(like: Tensor, values: list[float]) -> Tensor:
    """``values`` as a tensor of ``like``'s dtype on its device: each the rounding of its double, as a Python
    scalar is rounded when the single path multiplies a tensor by it."""
    return host_to_device(torch.tensor(values, dtype=torch.float64).to(like.dtype), like.device)


def host_to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """A small host tensor copied to ``device`` without waiting for the device: from pinned memory, since a copy
    from pageable memory to a GPU first synchronises its stream (a stall in every training step)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
