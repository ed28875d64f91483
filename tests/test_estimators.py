"""Value tests of the estimators against exact answers on enumerable models (paper §4-§6)."""

import math

import pytest
import torch

from micmco.estimators import (
    kl_estimate,
    log_marginal,
    log_power_marginal,
    renyi_estimate,
    snis_log_lik,
)
from micmco.objectives import objective_value
from micmco.testbed import DTYPE, TableModel

MODELS = [TableModel.random(4, seed, q=q) for q in ("random", "prior") for seed in range(4)]
SAMPLE_COUNTS = [1, 2, 4, 8, 16, 32, 64]


def random_terms(K=7, B=11, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    log_lik = -torch.rand(K, B, generator=g, dtype=DTYPE) * scale * 4
    log_prior = torch.randn(K, B, generator=g, dtype=DTYPE) * scale
    log_q = torch.randn(K, B, generator=g, dtype=DTYPE) * scale
    return log_lik, log_prior, log_q


# --- definitions -----------------------------------------------------------------------------


def test_estimators_match_their_formulas_directly():
    ll, lp, lq = random_terms()
    w = (ll + lp - lq).exp()
    assert torch.allclose(log_marginal(ll, lp, lq), w.mean(0).log())
    alpha = 2.5
    power = (ll.exp() ** alpha * lp.exp() / lq.exp()).mean(0).log()
    assert torch.allclose(log_power_marginal(ll, lp, lq, alpha), power)
    assert torch.allclose(snis_log_lik(ll, lp, lq), (w * ll).sum(0) / w.sum(0))
    assert torch.allclose(kl_estimate(ll, lp, lq), (w * ll).sum(0) / w.sum(0) - w.mean(0).log())
    naive = (power - alpha * w.mean(0).log()) / (alpha - 1)
    assert torch.allclose(renyi_estimate(ll, lp, lq, alpha), naive)


@pytest.mark.parametrize("kind", ["none", "kl", "renyi", "power"])
def test_objective_value_matches_equations_11_15_18(kind):
    ll, lp, lq = random_terms()
    lam, alpha = 0.37, 2.2
    S, Sa, U = log_marginal(ll, lp, lq), log_power_marginal(ll, lp, lq, alpha), snis_log_lik(ll, lp, lq)
    expected = {
        "none": S,
        "kl": (1 - lam) * S + lam * U,  # eq. 11
        "renyi": lam / (alpha - 1) * Sa - (lam * alpha / (alpha - 1) - 1) * S,  # eq. 15
        "power": Sa / alpha,  # eq. 18
    }[kind]
    assert torch.allclose(objective_value(kind, ll, lp, lq, lam=lam, alpha=alpha), expected)


def test_power_objective_is_renyi_with_tied_lambda():
    ll, lp, lq = random_terms()
    alpha = 3.0
    power = objective_value("power", ll, lp, lq, alpha=alpha)
    renyi = objective_value("renyi", ll, lp, lq, lam=(alpha - 1) / alpha, alpha=alpha)
    assert torch.allclose(power, renyi)


def test_asymmetric_sample_counts_use_the_first_samples_in_eq11s_grouping():
    """K for ln p(x), the first K' for the term carrying the divergence: (1 - λ) Ŝ^K + λ Û^K' (eq. 11) and
    (1 - λ) Ŝ^K + λ (Ŝ_α^K' - Ŝ^K')/(α - 1), the Rényi analogue, which is eq. 15 when K = K'."""
    ll, lp, lq = random_terms(K=16)
    lam, alpha = 0.4, 3.0
    value = objective_value("kl", ll, lp, lq, lam=lam, num_samples=16, mi_samples=1)
    expected = (1 - lam) * log_marginal(ll, lp, lq) + lam * snis_log_lik(ll[:1], lp[:1], lq[:1])
    assert torch.allclose(value, expected)
    value = objective_value("renyi", ll, lp, lq, lam=lam, alpha=alpha, num_samples=1, mi_samples=16)
    v_alpha = (log_power_marginal(ll, lp, lq, alpha) - log_marginal(ll, lp, lq)) / (alpha - 1)
    expected = (1 - lam) * log_marginal(ll[:1], lp[:1], lq[:1]) + lam * v_alpha
    assert torch.allclose(value, expected)
    # With K' = K both are the symmetric objectives of eq. 12 and 16.
    same = objective_value("renyi", ll, lp, lq, lam=lam, alpha=alpha, num_samples=16, mi_samples=16)
    assert torch.allclose(same, log_marginal(ll, lp, lq) + lam * renyi_estimate(ll, lp, lq, alpha))


def eq12_grouping(kind, lam, alpha, K, K_mi):
    """The asymmetric objective as the code had it before: Ŝ^K + λ D̂^K' (the negative control)."""

    def estimate(ll, lp, lq):
        divergence = kl_estimate if kind == "kl" else (lambda *t: renyi_estimate(*t, alpha))
        return log_marginal(ll[:K], lp[:K], lq[:K]) + lam * divergence(ll[:K_mi], lp[:K_mi], lq[:K_mi])

    return estimate


@pytest.mark.parametrize("K, K_mi", [(4, 1), (1, 4), (3, 2), (2, 3)])
def test_asymmetric_objectives_are_bounded_by_one_minus_lambda_ln_p_exactly(K, K_mi):
    """E O ≤ (1 - λ) ln p(x) ≤ 0 for discrete data, by exact enumeration of every ordered K-tuple, on
    random models and on ones built to break eq. 12's grouping (a prior with almost no mass where q
    puts most of it): there Ŝ^K + λ D̂^K' is above ln p(x) = 0, and grows without bound as that mass shrinks."""
    models = [TableModel.random(4, seed) for seed in range(6)]
    for epsilon in (1e-2, 1e-6):  # p(x|z) = 1: ln p(x) = 0, and q spreads over states the prior nearly excludes
        prior = torch.tensor([1 - 3 * epsilon, epsilon, epsilon, epsilon], dtype=DTYPE)
        q = torch.tensor([0.4, 0.2, 0.2, 0.2], dtype=DTYPE)
        models.append(TableModel(prior.log(), torch.zeros(4, dtype=DTYPE), q.log()))
    for model in models:
        for kind, alpha in (("kl", 1.0), ("renyi", 0.9), ("renyi", 1.5), ("renyi", 8.0)):
            for lam in (0.3, 0.9, 0.99):
                ours = model.ordered_expectation(
                    lambda ll, lp, lq: objective_value(kind, ll, lp, lq, lam, alpha, K, K_mi), max(K, K_mi)
                )
                assert ours <= (1 - lam) * model.log_marginal + 1e-9, (kind, alpha, lam)
    control = [model.ordered_expectation(eq12_grouping("kl", 0.9, 1.0, K, K_mi), max(K, K_mi)) for model in models[-2:]]
    if K > K_mi:  # the ln p(x) term sees the best of K samples; -λ Ŝ^K' rewards spreading q
        assert control[0] > 0.1 and control[1] > control[0] + 0.5  # above ln p(x) = 0, growing as epsilon -> 0


# --- single-sample identities (Props. 4, 5, 6) -------------------------------------------------


def test_prop4_single_sample_kl_estimate_is_log_q_over_prior_sample_by_sample():
    ll, lp, lq = random_terms(K=1, B=1000)
    assert torch.allclose(kl_estimate(ll, lp, lq), (lq - lp)[0])


@pytest.mark.parametrize("alpha", [0.3, 0.9, 1.0, 1.5, 4.0, 16.0])
def test_prop5_single_sample_renyi_estimate_is_log_q_over_prior_sample_by_sample(alpha):
    ll, lp, lq = random_terms(K=1, B=1000)
    assert torch.allclose(renyi_estimate(ll, lp, lq, alpha), (lq - lp)[0])


@pytest.mark.parametrize("model", MODELS[:4])
@pytest.mark.parametrize("beta", [0.2, 0.7, 1.0, 1.6])
def test_prop6_single_sample_objectives_are_the_beta_vae_in_expectation(model, beta):
    expected_log_lik = (model.log_q.exp() * model.log_lik).sum().item()
    beta_vae = expected_log_lik - beta * model.representational_kl  # eq. 19
    lam = 1 - beta
    kl, _ = model.expectation(lambda ll, lp, lq: objective_value("kl", ll, lp, lq, lam=lam), 1)
    renyi, _ = model.expectation(lambda ll, lp, lq: objective_value("renyi", ll, lp, lq, lam=lam, alpha=2.5), 1)
    power, _ = model.expectation(lambda ll, lp, lq: objective_value("power", ll, lp, lq, alpha=1 / beta), 1)
    assert kl == pytest.approx(beta_vae, abs=1e-12)
    assert renyi == pytest.approx(beta_vae, abs=1e-12)
    assert power == pytest.approx(beta_vae, abs=1e-12)


# --- convergence as K grows (Prop. 2 i) ----------------------------------------------------------


@pytest.mark.parametrize("model", [TableModel.random(3, seed, q=q) for q in ("random", "prior") for seed in range(3)])
def test_prop2i_estimates_converge_to_the_exact_values_as_K_grows(model):
    alpha = 2.0
    targets = {
        "log_marginal": (log_marginal, model.log_marginal),
        "kl": (kl_estimate, model.true_kl),
        "log_power_marginal": (lambda *t: log_power_marginal(*t, alpha), model.log_power_marginal(alpha)),
        "renyi": (lambda *t: renyi_estimate(*t, alpha), model.renyi_divergence(alpha)),
    }
    for name, (estimator, exact) in targets.items():
        errors = []
        for K in SAMPLE_COUNTS + [128, 256]:
            mean, var = model.expectation(estimator, K)
            errors.append((mean - exact) ** 2 + var)  # mean squared error
        assert errors[-1] < 0.05 * max(errors), (name, errors)
        # the last doublings of K each cut the error by at least 1.5 (it is O(1/K))
        assert all(b < a / 1.5 for a, b in zip(errors[-4:], errors[-3:])), (name, errors)


def test_prop2i_large_K_sampled_estimates_are_close_to_exact():
    model = MODELS[1]
    K = 200_000
    g = torch.Generator().manual_seed(3)
    idx = torch.multinomial(model.log_q.exp(), K, replacement=True, generator=g).unsqueeze(1)  # [K, 1]
    terms = model.log_lik[idx], model.log_prior[idx], model.log_q[idx]
    assert log_marginal(*terms).item() == pytest.approx(model.log_marginal, abs=0.01)
    assert kl_estimate(*terms).item() == pytest.approx(model.true_kl, abs=0.01)
    assert renyi_estimate(*terms, 0.5).item() == pytest.approx(model.renyi_divergence(0.5), abs=0.01)


@pytest.mark.parametrize("model", MODELS)
def test_iwae_bound_is_below_log_marginal_and_tightens_with_K(model):
    means = [model.expectation(log_marginal, K)[0] for K in SAMPLE_COUNTS]
    assert all(m <= model.log_marginal + 1e-12 for m in means)
    assert all(b >= a - 1e-12 for a, b in zip(means, means[1:]))  # Burda et al. 2015, Thm. 1


@pytest.mark.parametrize("model", MODELS)
def test_power_marginal_estimate_is_a_lower_bound_eq17(model):
    for alpha in (0.5, 2.0, 5.0):
        for K in (1, 4, 16):
            mean, _ = model.expectation(lambda *t: log_power_marginal(*t, alpha), K)
            assert mean <= model.log_power_marginal(alpha) + 1e-12


# --- the paper's inequalities, both sides computed exactly --------------------------------------


def test_prop2ii_does_not_hold_in_general():
    """Prop. 2 ii claims E[Ŝ^K] <= ln p(x) implies E[Û^K - Ŝ^K] >= KL(p(z|x) || p(z)).

    The premise always holds for IWAE, but the conclusion fails: with q(z|x) = p(z) and K = 1
    the estimate is KL(q || p) = 0 (Prop. 4), below any positive true KL; for K > 1 the
    self-normalised Û^K can be biased low by more than Ŝ^K is. It holds with equality when
    q(z|x) = p(z|x), and the gap vanishes as K grows (Prop. 2 i).
    """
    failures = []
    for q in ("random", "prior", "posterior"):
        for seed in range(6):
            model = TableModel.random(5, seed, q=q)
            for K in (1, 2, 4, 16):
                assert model.expectation(log_marginal, K)[0] <= model.log_marginal + 1e-12  # premise
                gap = model.expectation(kl_estimate, K)[0] - model.true_kl
                if q == "posterior":
                    assert gap == pytest.approx(0.0, abs=1e-9)
                elif gap < -1e-9:
                    failures.append((q, seed, K, gap))
    prior_k1 = [f for f in failures if f[0] == "prior" and f[2] == 1]
    assert len(prior_k1) == 6  # every prior proposal at K = 1
    assert any(f[0] == "random" for f in failures)  # and some ordinary proposals too
    assert len(failures) > 20


def test_prop2iii_variance_of_snis_vanishes_but_not_always_monotonically():
    """Var(Û^K) -> 0 as K grows, but can first rise from K = 1 (found by enumeration)."""
    non_monotone = 0
    for q in ("random", "prior"):
        for seed in range(6):
            model = TableModel.random(4, seed, q=q)
            variances = [model.expectation(snis_log_lik, K)[1] for K in SAMPLE_COUNTS]
            assert variances[-1] < 0.2 * max(variances)
            assert variances[-1] < variances[-2] < variances[-3]
            non_monotone += any(b > a for a, b in zip(variances, variances[1:]))
    assert non_monotone > 0


@pytest.mark.parametrize("model", MODELS)
def test_renyi_divergence_brackets_kl(model):
    """D_α <= KL for α < 1 and D_α >= KL for α > 1 (§4.2)."""
    kl = model.true_kl
    for alpha in (0.2, 0.5, 0.9):
        assert model.renyi_divergence(alpha) <= kl + 1e-12
    for alpha in (1.1, 2.0, 8.0):
        assert model.renyi_divergence(alpha) >= kl - 1e-12
    assert model.renyi_divergence(1 + 1e-6) == pytest.approx(kl, abs=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_prop3_power_marginal_bounds_and_identity(model):
    """For discrete x and α > 1: p(x)^α <= p^α(x) <= p(x), and ln p^α - α ln p = (α-1) D_α."""
    for alpha in (1.5, 2.0, 6.0):
        log_pa = model.log_power_marginal(alpha)
        assert alpha * model.log_marginal <= log_pa + 1e-12
        assert log_pa <= model.log_marginal + 1e-12
        assert log_pa - alpha * model.log_marginal == pytest.approx((alpha - 1) * model.renyi_divergence(alpha))


def test_prop3_equality_iff_latents_determine_the_observation():
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=DTYPE).log()
    deterministic = TableModel(prior, torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=DTYPE).log(), prior)
    noisy = TableModel(prior, torch.tensor([0.9, 0.0, 1.0, 0.0], dtype=DTYPE).log(), prior)
    for alpha in (1.5, 3.0):
        assert deterministic.log_power_marginal(alpha) == pytest.approx(deterministic.log_marginal, abs=1e-12)
        assert noisy.log_power_marginal(alpha) < noisy.log_marginal - 1e-3


def test_renyi_estimate_is_above_kl_estimate_for_alpha_above_one_sample_by_sample():
    ll, lp, lq = random_terms(K=16, B=500)
    kl = kl_estimate(ll, lp, lq)
    for alpha in (1.01, 2.0, 10.0):
        assert (renyi_estimate(ll, lp, lq, alpha) >= kl - 1e-12).all()
    for alpha in (0.1, 0.5, 0.99):
        assert (renyi_estimate(ll, lp, lq, alpha) <= kl + 1e-12).all()


# --- numerics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [1e2, 1e4, 1e6])
def test_estimates_are_finite_and_shift_invariant_at_any_magnitude(magnitude):
    ll, lp, lq = random_terms(K=16, B=50, scale=1.0)
    base_kl, base_renyi = kl_estimate(ll, lp, lq), renyi_estimate(ll, lp, lq, 3.0)
    tolerance = 1e-12 * magnitude
    for c in (magnitude, -magnitude):
        # scaling p(z) by e^c lowers both divergence estimates by exactly c
        terms = ll, lp + c, lq
        for value in (log_marginal(*terms), log_power_marginal(*terms, 3.0), snis_log_lik(*terms)):
            assert torch.isfinite(value).all()
        assert torch.allclose(kl_estimate(*terms) + c, base_kl, atol=tolerance)
        assert torch.allclose(renyi_estimate(*terms, 3.0) + c, base_renyi, atol=tolerance)
        # scaling p(x|z) by e^c leaves them unchanged
        terms = ll + c, lp, lq
        assert torch.allclose(kl_estimate(*terms), base_kl, atol=tolerance)
        assert torch.allclose(renyi_estimate(*terms, 3.0), base_renyi, atol=tolerance)
    huge = [t * magnitude for t in (ll, lp, lq)]
    for alpha in (0.5, 1.0, 2.0):
        assert torch.isfinite(renyi_estimate(*huge, alpha)).all()
        assert torch.isfinite(renyi_estimate(*[t.float() for t in huge], alpha)).all()


def test_renyi_estimate_is_continuous_at_alpha_one_in_float32():
    ll, lp, lq = (t.float() for t in random_terms(K=16, B=200))
    kl = kl_estimate(ll, lp, lq)
    for eps in (1e-7, 1e-5, 1e-3):
        for alpha in (1 - eps, 1 + eps):
            value = renyi_estimate(ll, lp, lq, alpha)
            assert torch.allclose(value, kl, atol=1e-5 + 20 * eps), alpha
    exact = renyi_estimate(*(t.double() for t in (ll, lp, lq)), 1 + 1e-4)
    assert torch.allclose(renyi_estimate(ll, lp, lq, 1 + 1e-4).double(), exact, atol=1e-5)


def test_invalid_alpha_and_kind_are_rejected_with_the_valid_choices():
    ll, lp, lq = random_terms()
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        renyi_estimate(ll, lp, lq, 0.0)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        objective_value("power", ll, lp, lq, alpha=-1.0)
    with pytest.raises(ValueError, match="valid choices: none, kl, renyi, power"):
        objective_value("renyii", ll, lp, lq)
    with pytest.raises(ValueError, match="mi_samples must be in"):
        objective_value("kl", ll, lp, lq, lam=0.1, mi_samples=100)
    assert math.isfinite(objective_value("renyi", ll, lp, lq, lam=0.2, alpha=1.0).sum().item())


# --- the Python API: bad inputs and edge cases --------------------------------------------------


def test_a_sample_with_zero_likelihood_carries_no_weight_and_no_nan():
    """ln p(x|z) = -∞ for one sample: its weight is 0, so every estimate equals the one without it."""
    ll, lp, lq = random_terms(K=5, B=3)
    ll = ll.clone().requires_grad_(True)
    broken = torch.cat([ll[:1], torch.full_like(ll[:1], -math.inf), ll[1:]])  # sample 1 is impossible
    lp2, lq2 = torch.cat([lp[:1], lp[:1], lp[1:]]), torch.cat([lq[:1], lq[:1], lq[1:]])
    for estimate, reference in (
        (snis_log_lik(broken, lp2, lq2), snis_log_lik(ll, lp, lq)),
        (kl_estimate(broken, lp2, lq2), kl_estimate(ll, lp, lq)),
        (renyi_estimate(broken, lp2, lq2, 0.5), renyi_estimate(ll, lp, lq, 0.5)),
        (renyi_estimate(broken, lp2, lq2, 3.0), renyi_estimate(ll, lp, lq, 3.0)),
        (log_power_marginal(broken, lp2, lq2, 0.5), log_power_marginal(ll, lp, lq, 0.5)),
    ):
        assert torch.isfinite(estimate).all() and torch.isfinite(reference).all()
    # Û and the Rényi estimate's self-normalised parts are unchanged; Ŝ averages over one more sample (K = 6)
    assert torch.allclose(snis_log_lik(broken, lp2, lq2), snis_log_lik(ll, lp, lq))
    assert torch.allclose(kl_estimate(broken, lp2, lq2), kl_estimate(ll, lp, lq) + math.log(6 / 5))
    assert torch.allclose(renyi_estimate(broken, lp2, lq2, 3.0), renyi_estimate(ll, lp, lq, 3.0) + math.log(6 / 5))
    (gradient,) = torch.autograd.grad(kl_estimate(broken, lp2, lq2).sum(), ll)
    assert torch.isfinite(gradient).all()


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((0, 3), (0, 3), (0, 3)), "log_lik has K = 0 samples"),
        (((16, 4), (16, 5), (16, 4)), "log_prior is shaped [16, 5] but log_lik is [16, 4]"),
        (((16,), (16,), (16,)), "log_lik must be shaped [K, B] (samples, batch), got [16]"),
    ],
)
def test_bad_shapes_are_errors_naming_the_argument_and_the_expected_shape(shapes, message):
    terms = [torch.zeros(shape) for shape in shapes]
    for function in (log_marginal, snis_log_lik, kl_estimate, lambda *t: renyi_estimate(*t, 2.0)):
        with pytest.raises(ValueError) as error:
            function(*terms)
        assert message in str(error.value)


def test_the_objective_api_checks_the_same_ranges_as_the_configs():
    from micmco.config import from_dict
    from micmco.objectives import Objective, ObjectiveConfig

    for lam in (2.0, 1.0, math.inf):
        with pytest.raises(ValueError, match="lam: must be a finite number below 1"):
            Objective("kl", lam=lam)
        with pytest.raises(ValueError, match="lam: must be a finite number below 1"):
            from_dict(ObjectiveConfig, {"kind": "renyi", "lam": lam if math.isfinite(lam) else 1.5, "alpha": 2.0})
    # β-VAEs with β = 1 - λ > 1 (Prop. 6) are valid on both paths
    assert Objective("renyi", lam=-0.6, alpha=2.0).lam == from_dict(ObjectiveConfig, {"kind": "kl", "lam": -0.6}).lam


# --- one default for K' (= K), K = 0, and data points with no weight ---------------------------


def test_mi_samples_defaults_to_num_samples_everywhere():
    from micmco.gradients import EstimatorConfig
    from micmco.objectives import Objective, ObjectiveConfig

    ll, lp, lq = random_terms(K=4, B=9)
    log_w = ll + lp - lq
    default = Objective("kl", lam=0.5, num_samples=4)
    assert default.mi_samples == 4 and default == Objective("kl", lam=0.5, num_samples=4, mi_samples=4)
    value = default(log_w, ll)
    assert torch.equal(value, Objective("kl", lam=0.5, num_samples=4, mi_samples=4)(log_w, ll))
    assert not torch.allclose(value, Objective("kl", lam=0.5, num_samples=4, mi_samples=1)(log_w, ll))
    # objective_value: the first K samples for ln p(x), and K' = K of them for the divergence
    first = objective_value("kl", ll, lp, lq, lam=0.5, num_samples=2)
    assert torch.equal(first, objective_value("kl", ll[:2], lp[:2], lq[:2], lam=0.5))
    # the run configs' path gives the same objective
    config = EstimatorConfig(base="dreg", num_samples=4)
    assert Objective.from_config(ObjectiveConfig("kl", 0.5), config.num_samples, config.mi_samples) == default


@pytest.mark.parametrize("name", ["num_samples", "mi_samples"])
def test_zero_samples_are_an_error_naming_the_argument(name):
    from micmco.objectives import Objective

    ll, lp, lq = random_terms(K=4, B=3)
    with pytest.raises(ValueError, match=f"{name}: must be an integer >= 1, got 0"):
        objective_value("kl", ll, lp, lq, lam=0.5, **{name: 0})
    with pytest.raises(ValueError, match=f"{name}: must be an integer >= 1, got 0"):
        Objective("kl", lam=0.5, **{"num_samples": 4, name: 0})


def test_a_data_point_with_no_weight_in_any_sample_is_defined_or_an_error():
    """Every sample with ln p(x|z) = -∞: ln p̂(x) = Û = -∞ (no NaN); the divergence estimates raise, naming log_lik."""
    ll, lp, lq = random_terms(K=5, B=3)
    ll = ll.clone()
    ll[:, 1] = -math.inf  # data point 1 is impossible under every sample
    ll.requires_grad_(True)
    u_hat = snis_log_lik(ll, lp, lq)
    assert u_hat[1].item() == -math.inf and log_marginal(ll, lp, lq)[1].item() == -math.inf
    assert torch.isfinite(u_hat[[0, 2]]).all()
    (gradient,) = torch.autograd.grad(u_hat[[0, 2]].sum(), ll)
    assert torch.isfinite(gradient).all()
    message = "log_lik: every sample of data point 1 has zero weight"
    for estimate in (
        lambda: kl_estimate(ll, lp, lq),
        lambda: renyi_estimate(ll, lp, lq, 2.0),
        lambda: objective_value("kl", ll, lp, lq, lam=0.5),
        lambda: objective_value("renyi", ll, lp, lq, lam=0.5, alpha=2.0),
    ):
        with pytest.raises(ValueError, match=message):
            estimate()
    # the objectives without a divergence term are -∞ there, as ln p(x) is
    for kind, params in (("none", {}), ("power", {"alpha": 2.0})):
        value = objective_value(kind, ll, lp, lq, **params)
        assert value[1].item() == -math.inf and torch.isfinite(value[[0, 2]]).all()
