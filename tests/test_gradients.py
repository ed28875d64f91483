"""Gradient estimators: unbiasedness against exact gradients, and the variance orderings.

Each draw of an estimator is one column of a batch whose parameters are separate copies,
so one backward pass gives N independent gradient estimates. The exact reference is the
gradient of E[objective], computed by enumerating every tuple of categorical samples or by
Gauss-Hermite quadrature over Gaussian ones. A coordinate fails when its mean is more than
Z_MAX standard errors from the reference; with about 2,000 coordinates tested, the chance
that an unbiased estimator fails anywhere is about 1% (and the seeds are fixed).
Negative controls (known-biased variants) show that the test detects small biases.
VariationalLoss, the Python API over the estimators, takes enums or strings and runs the checks a config does.
"""

import pytest
import torch

import micmco.gradients as gradients
from micmco.config import ConfigError
from micmco.gradients import (
    BASE_ESTIMATORS,
    BaseEstimator,
    EstimatorConfig,
    VariationalLoss,
    check_combination,
    surrogate_objective,
)
from micmco.latents import CategoricalLatent, GaussianLatent
from micmco.models import SingleSymbolVAE
from micmco.objectives import Objective, ObjectiveConfig, ObjectiveKind
from micmco.testbed import DiscreteToy, GaussianToy, z_scores

Z_MAX = 4.5
DRAWS = 40_000

OBJECTIVES = {
    "none": (ObjectiveKind.NONE, 0.0, 1.0),
    "kl": (ObjectiveKind.KL, 0.6, 1.0),
    "renyi-0.5": (ObjectiveKind.RENYI, 0.6, 0.5),
    "renyi-1": (ObjectiveKind.RENYI, 0.6, 1.0),
    "renyi-3": (ObjectiveKind.RENYI, 0.6, 3.0),
    "power-2": (ObjectiveKind.POWER, 0.0, 2.0),
    "power-0.7": (ObjectiveKind.POWER, 0.0, 0.7),
}
CONTINUOUS = tuple(name for name, spec in BASE_ESTIMATORS.items() if spec.reparameterised)
SCORE_FUNCTION = tuple(name for name, spec in BASE_ESTIMATORS.items() if not spec.reparameterised)


def sample_counts(spec):
    """(K, K') pairs to test: one sample where that is all it takes, or all the exact reference covers (the
    ELBO's K-sample average is another objective); else 1 and 3 samples each way, at least min_samples."""
    if spec.max_samples == 1 or spec.analytic_divergence:
        return [(1, 1)]
    return [(spec.min_samples, spec.min_samples), (3, 3), (3, 1), (1, 3)]


def cases():
    for base, spec in BASE_ESTIMATORS.items():
        counts = sample_counts(spec)
        for objective in OBJECTIVES:
            for K, K_mi in counts:
                if K != K_mi and not objective.startswith(("kl", "renyi")):
                    continue
                yield pytest.param(base, objective, K, K_mi, id=f"{base}-{objective}-{K}/{K_mi}")


def make_objective(name, K, K_mi):
    kind, lam, alpha = OBJECTIVES[name]
    return Objective(kind, lam, alpha, K, K_mi)


def assert_unbiased(toy, base, objective, seed=1, draws=DRAWS, estimator=None):
    reference = toy.reference_gradient(objective)
    samples = toy.draws(base, objective, draws, seed, estimator=estimator)
    z = z_scores(samples, reference)
    assert z.abs().max() < Z_MAX, f"max |z| = {z.abs().max():.2f}; z = {z}"
    # the test has power: the standard errors are a few percent of the gradient at most
    relative_se = samples.std(0) / draws**0.5 / reference.abs().clamp_min(1e-3)
    assert relative_se.median() < 0.02, relative_se
    return z


@pytest.mark.parametrize("base, objective, K, K_mi", list(cases()))
def test_gradient_estimator_is_unbiased(base, objective, K, K_mi):
    obj = make_objective(objective, K, K_mi)
    if base in CONTINUOUS:
        toys = [GaussianToy(dim=1, seed=0), GaussianToy(dim=2, seed=1)] if K * K_mi == 1 else [GaussianToy(dim=1)]
    else:
        toys = [DiscreteToy(seed=0)]
    for toy in toys:
        assert_unbiased(toy, base, obj)


@pytest.mark.parametrize("objective", ["kl", "renyi-3", "power-2"])
def test_score_function_estimators_are_unbiased_for_gaussian_latents_too(objective):
    for base in SCORE_FUNCTION:
        assert_unbiased(GaussianToy(dim=1), base, make_objective(objective, 3, 3), draws=100_000)


@pytest.mark.parametrize("objective", ["none", "kl", "renyi-3", "power-2"])
def test_dreg_agrees_with_iwae_at_K_16(objective):
    """No quadrature in 16 dimensions: compare against IWAE, unbiased by construction (two-sample test)."""
    obj = make_objective(objective, 16, 16)
    toy = GaussianToy(dim=2, seed=1)
    iwae = toy.draws("iwae", obj, DRAWS, seed=1)
    dreg = toy.draws("dreg", obj, DRAWS, seed=2)
    z = (dreg.mean(0) - iwae.mean(0)) / ((dreg.var(0) + iwae.var(0)) / DRAWS).sqrt()
    assert z.abs().max() < Z_MAX


def test_quadrature_reference_is_converged():
    toy = GaussianToy(dim=1)
    objective = make_objective("renyi-3", 3, 3)
    coarse = toy.reference_gradient(objective, nodes=40)
    fine = toy.reference_gradient(objective, nodes=56)
    assert torch.allclose(coarse, fine, rtol=1e-4, atol=1e-6)


# --- negative controls: the same test must reject biased variants --------------------------------


def test_negative_control_stl_with_several_samples_is_biased():
    toy = GaussianToy(dim=1, seed=1)
    with pytest.raises(AssertionError, match="max \\|z\\|"):  # the raw function: the public entry points refuse it
        assert_unbiased(toy, "stl", make_objective("kl", 3, 3), estimator=gradients.stl)


def test_negative_control_dreg_without_the_snis_correction_is_biased(monkeypatch):
    """Treating Û like a log-mean-exp (coefficients w̃² only) is the tempting mistake."""
    naive = lambda log_w, log_lik: (torch.softmax(log_w.detach(), 0).square() * log_lik).sum(0)  # noqa: E731
    monkeypatch.setattr(gradients, "_dreg_snis_log_lik_of_weights", naive)
    with pytest.raises(AssertionError, match="max \\|z\\|"):
        assert_unbiased(GaussianToy(dim=1, seed=1), "dreg", make_objective("kl", 3, 3))


def test_negative_control_baseline_that_sees_its_own_sample_is_biased(monkeypatch):
    monkeypatch.setattr(gradients, "leave_one_out_baselines", lambda objective, log_w, log_lik: log_w)
    with pytest.raises(AssertionError, match="max \\|z\\|"):
        assert_unbiased(DiscreteToy(seed=0), "vimco", make_objective("kl", 3, 3))


def test_negative_control_score_function_without_the_explicit_term_is_biased():
    def score_only(objective, latent, proposal, log_likelihood, generator):
        z = latent.sample(proposal, objective.num_draws, generator)
        log_lik = log_likelihood(z)
        log_q = latent.log_q(proposal, z)
        fixed_q = latent.log_q(proposal.detach(), z)
        value = objective(log_lik + latent.log_prior(z) - fixed_q, log_lik)
        score = (value.detach() * log_q).sum(0)
        return gradients.Surrogate(value + score - score.detach(), value, value)

    with pytest.raises(AssertionError, match="max \\|z\\|"):
        assert_unbiased(DiscreteToy(seed=0), None, make_objective("kl", 3, 3), estimator=score_only)


# --- variance orderings -------------------------------------------------------------------------


def encoder_variance(toy, base, objective, seed):
    draws = toy.draws(base, objective, 20_000, seed)
    return draws[:, toy.encoder_columns()].var(0).sum().item()


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_dreg_has_lower_encoder_gradient_variance_than_iwae_at_K_16(objective):
    obj = make_objective(objective, 16, 16)
    for toy in (GaussianToy(dim=1, seed=1), GaussianToy(dim=1, seed=2), GaussianToy(dim=2, seed=1)):
        ratio = encoder_variance(toy, "dreg", obj, 1) / encoder_variance(toy, "iwae", obj, 1)
        assert ratio < 0.5, ratio


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_vimco_has_lower_encoder_gradient_variance_than_reinforce(objective):
    for K in (4, 16):
        obj = make_objective(objective, K, K)
        for toy in (DiscreteToy(seed=0), DiscreteToy(num_latents=3, num_categories=3, seed=1)):
            ratio = encoder_variance(toy, "vimco", obj, 1) / encoder_variance(toy, "reinforce", obj, 1)
            assert ratio < 0.5, ratio


def test_decoder_gradients_are_the_same_for_every_reparameterised_estimator():
    """θ-gradients are the autodiff gradient with the samples fixed, whatever the φ-estimator."""
    toy = GaussianToy(dim=2, seed=1)
    obj = make_objective("renyi-3", 4, 4)
    decoder = ~toy.encoder_columns()
    iwae, dreg = (toy.draws(base, obj, 100, seed=5)[:, decoder] for base in ("iwae", "dreg"))
    assert torch.allclose(iwae, dreg)


# --- sample-wise identities of the surrogates ---------------------------------------------------


def test_surrogate_value_is_the_objective_estimate():
    toy = GaussianToy(dim=2, seed=1)
    obj = make_objective("kl", 4, 4)
    params = toy.replicate(64)
    values = {}
    for base in ("iwae", "dreg"):
        generator = torch.Generator().manual_seed(0)
        result = gradients.surrogate_objective(
            base, obj, toy.latent, toy.proposal(params), lambda z: toy.log_likelihood(params, z), generator
        )
        values[base] = result.value.detach()
    assert torch.allclose(values["iwae"], values["dreg"])
    assert torch.allclose(values["iwae"], result.log_marginal + 0.6 * result.divergence)


@pytest.mark.parametrize("objective", ["kl", "renyi-3", "power-2"])
def test_elbo_surrogate_is_the_beta_vae_sample_by_sample(objective):
    """ELBO base with one sample: kl/renyi give ln p(x|z) - (1-λ) KL(q||p), power ln p(x|z) - KL/α (Prop. 6)."""
    toy = GaussianToy(dim=2, seed=1)
    obj = make_objective(objective, 1, 1)
    params = toy.replicate(32)
    proposal = toy.proposal(params)
    result = gradients.elbo(obj, toy.latent, proposal, lambda z: toy.log_likelihood(params, z), torch.Generator())
    z = toy.latent.sample(proposal, 1, torch.Generator())
    log_lik = toy.log_likelihood(params, z)[0]
    beta = 1 / obj.alpha if obj.kind is ObjectiveKind.POWER else 1 - obj.lam
    expected = log_lik - beta * toy.latent.kl_to_prior(proposal)
    assert torch.allclose(result.value, expected)


# --- invalid combinations fail at config time -----------------------------------------------------


@pytest.mark.parametrize(
    "base, K, K_mi, objective, latent, key, message",
    [
        ("vimco", 1, None, "kl", "categorical", "estimator.num_samples", "use reinforce"),
        ("dreg", 16, None, "kl", "categorical", "estimator.base", "use reinforce or vimco"),
        ("stl", 1, None, "kl", "categorical", "estimator.base", "use reinforce or vimco"),
        ("iwae", 16, None, "kl", "categorical", "estimator.base", "use reinforce or vimco"),
        ("elbo", 1, None, "kl", "categorical", "estimator.base", "use reinforce or vimco"),
        ("stl", 16, None, "kl", "gaussian", "estimator.base", "use dreg"),
        ("stl", 1, 4, "kl", "gaussian", "estimator.base", "use dreg"),
        ("elbo", 1, 4, "kl", "gaussian", "estimator.mi_samples", "analytic"),
        ("dreg", 16, 1, "none", "gaussian", "estimator.mi_samples", "kl or renyi"),
        ("dreg", 16, 1, "power", "gaussian", "estimator.mi_samples", "kl or renyi"),
    ],
)
def test_invalid_combinations_are_rejected_with_advice(base, K, K_mi, objective, latent, key, message):
    params = {"kl": dict(lam=0.5), "none": {}, "power": dict(alpha=2.0)}[objective]
    with pytest.raises(ConfigError, match=message) as error:
        check_combination(EstimatorConfig(base, K, K_mi), ObjectiveConfig(objective, **params), latent)
    assert error.value.key == key


@pytest.mark.parametrize("base", BASE_ESTIMATORS)
def test_each_estimator_is_checked_by_its_registry_entry(base):
    """The latents and sample counts an estimator takes are its EstimatorSpec's."""
    spec = BASE_ESTIMATORS[base]
    K = spec.max_samples or max(spec.min_samples, 4)
    kl = ObjectiveConfig("kl", 0.5)
    check_combination(EstimatorConfig(base, K), kl, "gaussian")
    rejected = []
    if spec.reparameterised:
        rejected.append((EstimatorConfig(base, K), "categorical", "estimator.base"))
    else:
        check_combination(EstimatorConfig(base, K), kl, "categorical")
    if spec.min_samples > 1:
        rejected.append((EstimatorConfig(base, spec.min_samples - 1), "gaussian", "estimator.num_samples"))
    if spec.max_samples is not None:
        rejected.append((EstimatorConfig(base, spec.max_samples + 1), "gaussian", "estimator.base"))
    if spec.analytic_divergence:
        rejected.append((EstimatorConfig(base, K, K + 1), "gaussian", "estimator.mi_samples"))
    for config, latent, key in rejected:
        with pytest.raises(ConfigError) as error:
            check_combination(config, kl, latent)
        assert error.value.key == key


def test_valid_combinations_pass():
    check_combination(EstimatorConfig("vimco", 1, 16), ObjectiveConfig("renyi", 0.5, 2.0), "categorical")
    check_combination(EstimatorConfig("reinforce", 1), ObjectiveConfig("kl", 0.5), "categorical")
    check_combination(EstimatorConfig("dreg", 16, 1), ObjectiveConfig("kl", 0.5), "gaussian")
    check_combination(EstimatorConfig("stl", 1), ObjectiveConfig("power", alpha=2.0), "gaussian")
    check_combination(EstimatorConfig("vimco", 16), ObjectiveConfig("none"), "gaussian")


@pytest.mark.parametrize("kind, params", [("none", {}), ("power", {"alpha": 2.0}), ("kl", {"lam": 0.5})])
def test_an_objective_built_in_python_has_k_prime_equal_to_k_like_a_config(kind, params):
    """Objective(kind, num_samples=K) is K/K, as the run configs are: valid with every estimator that takes K samples
    (K' = 1 by default made the objectives without a divergence term invalid with K > 1)."""
    objective = Objective(kind, num_samples=4, **params)
    for base, spec in BASE_ESTIMATORS.items():
        if spec.max_samples is None or spec.max_samples >= 4:
            gradients.VariationalLoss(base, objective)
    config = EstimatorConfig("dreg", 4)
    assert Objective.from_config(ObjectiveConfig(kind, **params), config.num_samples, config.mi_samples) == objective


# --- VariationalLoss: enums and their strings, and the checks of a config ------------------------------

KINDS = {
    ObjectiveKind.NONE: {},
    ObjectiveKind.KL: {"lam": 0.5},
    ObjectiveKind.RENYI: {"lam": 0.3, "alpha": 2.0},  # not 0.5: with λ = (α - 1)/α Rényi is the power objective
    ObjectiveKind.POWER: {"alpha": 2.0},
}


def _gaussian_model():
    torch.manual_seed(0)
    return SingleSymbolVAE(20, GaussianLatent(3), hidden_size=8)


def _categorical_model():
    torch.manual_seed(0)
    return SingleSymbolVAE(20, CategoricalLatent(2, 3), hidden_size=8)


@pytest.mark.parametrize(
    "base, kind, K, model",
    [
        ("iwae", "kl", 4, _gaussian_model),
        ("dreg", "renyi", 4, _gaussian_model),
        ("elbo", "power", 1, _gaussian_model),
        ("vimco", "renyi", 4, _categorical_model),
        ("reinforce", "none", 1, _categorical_model),
    ],
)
def test_variational_loss_is_the_same_for_enums_and_strings(base, kind, K, model):
    x = torch.arange(6)
    params = {k: v for k, v in KINDS[ObjectiveKind(kind)].items()}
    by_string = VariationalLoss(base, Objective(kind, num_samples=K, mi_samples=K, **params))
    by_enum = VariationalLoss(
        BaseEstimator(base), Objective(ObjectiveKind(kind), num_samples=K, mi_samples=K, **params)
    )
    m = model()
    a = by_string(m, x, torch.Generator().manual_seed(1))[0]
    b = by_enum(m, x, torch.Generator().manual_seed(1))[0]
    assert torch.equal(a, b)


def test_the_python_api_runs_the_same_combination_checks_as_configs():
    with pytest.raises(ConfigError, match="stl is unbiased only with one sample"):
        VariationalLoss("stl", Objective("kl", 0.5, num_samples=16, mi_samples=16))
    with pytest.raises(ConfigError, match="vimco needs at least 2 samples"):
        VariationalLoss("vimco", Objective("kl", 0.5))
    with pytest.raises(ConfigError, match="elbo uses the analytic KL"):
        VariationalLoss("elbo", Objective("kl", 0.5, num_samples=1, mi_samples=4))
    loss = VariationalLoss("dreg", Objective("kl", 0.5, num_samples=4, mi_samples=4))
    with pytest.raises(ConfigError, match="dreg needs reparameterised samples, which categorical latents do not have"):
        loss(_categorical_model(), torch.arange(4))
    model = _categorical_model()
    with pytest.raises(ConfigError, match="iwae needs reparameterised samples"):
        surrogate_objective(
            "iwae",
            Objective("kl", 0.5, num_samples=2, mi_samples=2),
            model.latent,
            model.proposal(torch.arange(3)),
            lambda z: model.log_likelihood(torch.arange(3), z),
        )
    with pytest.raises(ConfigError, match="stl is unbiased only"):
        model = _gaussian_model()
        surrogate_objective(
            gradients.BaseEstimator.STL,
            Objective("kl", 0.5, num_samples=3, mi_samples=3),
            model.latent,
            model.proposal(torch.arange(3)),
            lambda z: model.log_likelihood(torch.arange(3), z),
        )
