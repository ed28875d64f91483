"""micmco.objectives: every objective kind the same as enum and string, and unusable settings named."""

import pytest
import torch

from micmco.gradients import VariationalLoss
from micmco.objectives import Objective, ObjectiveKind, objective_value

KINDS = {
    ObjectiveKind.NONE: {},
    ObjectiveKind.KL: {"lam": 0.5},
    ObjectiveKind.RENYI: {"lam": 0.3, "alpha": 2.0},  # not 0.5: with λ = (α - 1)/α Rényi is the power objective
    ObjectiveKind.POWER: {"alpha": 2.0},
}


def _terms(seed=0):
    g = torch.Generator().manual_seed(seed)
    return -torch.rand(8, 5, generator=g) * 4, torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)


@pytest.mark.parametrize("kind", list(ObjectiveKind), ids=lambda k: k.value)
def test_every_objective_kind_behaves_the_same_as_enum_and_string(kind):
    log_lik, log_prior, log_q = _terms()
    by_enum = objective_value(kind, log_lik, log_prior, log_q, **KINDS[kind])
    by_string = objective_value(kind.value, log_lik, log_prior, log_q, **KINDS[kind])
    assert torch.equal(by_enum, by_string)
    assert Objective(kind.value, **KINDS[kind]) == Objective(kind, **KINDS[kind])
    assert Objective(kind.value, **KINDS[kind]).kind is kind
    # and the four kinds really differ (the bug: every string fell through to kl or none)
    others = [objective_value(k.value, log_lik, log_prior, log_q, **KINDS[k]) for k in ObjectiveKind if k is not kind]
    assert all(not torch.allclose(by_string, other) for other in others)


def test_the_renyi_objective_from_a_string_is_not_the_kl_objective():
    log_lik, log_prior, log_q = _terms()
    log_w = log_lik + log_prior - log_q
    renyi = Objective("renyi", lam=0.5, alpha=2.0, num_samples=8, mi_samples=8)(log_w, log_lik)
    kl = Objective("kl", lam=0.5, num_samples=8, mi_samples=8)(log_w, log_lik)
    assert (renyi > kl).all()  # sample by sample, the Rényi estimate is above the KL one for α > 1


@pytest.mark.parametrize("bad", ["renyii", "KL", 3, None])
def test_unknown_kinds_and_bases_name_the_valid_choices(bad):
    with pytest.raises(ValueError, match="valid choices: none, kl, renyi, power"):
        Objective(bad)
    with pytest.raises(ValueError, match="valid choices: none, kl, renyi, power"):
        objective_value(bad, *_terms())
    with pytest.raises(ValueError, match="valid choices: elbo, iwae, stl, dreg, reinforce, vimco"):
        VariationalLoss(bad, Objective("kl", 0.5))


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("inf"), float("nan")])
def test_objective_rejects_unusable_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        Objective("renyi", lam=0.5, alpha=alpha)
