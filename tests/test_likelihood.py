"""The fused, chunked decoder head: the same values and gradients as the reference head."""

import pytest
import torch

import micmco.models.common as common
from micmco.gradients import VariationalLoss
from micmco.latents import CategoricalLatent, GaussianLatent
from micmco.models import SingleSymbolVAE
from micmco.models.common import decoder_log_likelihood, linear_log_softmax_gather, summed_embedding
from micmco.objectives import Objective, ObjectiveKind


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 64 rows and no reference path for small logits, so small tensors exercise the chunking."""
    monkeypatch.setattr(common, "CHUNK_BYTES", 64 * 4 * 50)
    monkeypatch.setattr(common, "SMALL_LOGITS_BYTES", 0)


def reference(hidden, weight, bias, x):
    return common.symbol_log_likelihood(torch.nn.functional.linear(hidden, weight, bias), x)


def inputs(K=5, B=30, H=7, V=50, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    hidden = (3 * torch.randn(K, B, H, generator=generator, dtype=dtype)).requires_grad_()  # [K, B, H]
    weight = torch.randn(V, H, generator=generator, dtype=dtype).requires_grad_()  # [V, H]
    bias = torch.randn(V, generator=generator, dtype=dtype).requires_grad_()  # [V]
    x = torch.randint(V, (B,), generator=generator)  # [B]
    return hidden, weight, bias, x


def test_values_and_gradients_match_the_reference(small_chunks):
    hidden, weight, bias, x = inputs()  # 150 rows: chunks of 64, 64 and 22
    grad_output = torch.randn(5, 30, generator=torch.Generator().manual_seed(1))
    fused = linear_log_softmax_gather(hidden, weight, bias, x)
    expected = reference(hidden, weight, bias, x)
    assert fused.shape == (5, 30)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
    fused_grads = torch.autograd.grad(fused, (hidden, weight, bias), grad_output)
    expected_grads = torch.autograd.grad(expected, (hidden, weight, bias), grad_output)
    for got, want in zip(fused_grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_float64_passes_gradcheck(small_chunks):
    hidden, weight, bias, x = inputs(K=2, B=40, H=3, V=50, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda h, w, b: linear_log_softmax_gather(h, w, b, x), (hidden, weight, bias))


def test_only_the_requested_gradients_are_computed(small_chunks, monkeypatch):
    """autograd.grad with respect to the hidden units alone (as DReG does) leaves W's and b's gradients out."""
    hidden, weight, bias, x = inputs()
    products = []
    matmul = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: products.append(tuple(b.shape)) or matmul(a, b))
    (grad_hidden,) = torch.autograd.grad(linear_log_softmax_gather(hidden, weight, bias, x).sum(), hidden)
    assert products and all(shape == (50, 7) for shape in products)  # grad_logits @ W only, never ... @ h
    torch.testing.assert_close(grad_hidden, torch.autograd.grad(reference(hidden, weight, bias, x).sum(), hidden)[0])


def test_backward_is_not_differentiable_twice(small_chunks):
    hidden, weight, bias, x = inputs()
    (grad_hidden,) = torch.autograd.grad(
        linear_log_softmax_gather(hidden, weight, bias, x).sum(), hidden, create_graph=True
    )
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad|double backward"):
        grad_hidden.sum().backward()


def test_small_logits_take_the_reference_path(monkeypatch):
    calls = []
    monkeypatch.setattr(common.LinearLogSoftmaxGather, "apply", lambda *args: calls.append(1))
    hidden, weight, bias, x = inputs()  # 150 x 50 float32 logits: 30 KB
    linear_log_softmax_gather(hidden, weight, bias, x)
    assert not calls


def test_bfloat16_autocast_stays_close_to_the_reference(small_chunks):
    hidden, weight, bias, x = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = linear_log_softmax_gather(hidden, weight, bias, x)
        expected = reference(hidden, weight, bias, x)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, expected.float(), rtol=0.05, atol=0.3)
    grads = torch.autograd.grad(fused.sum(), (hidden, weight, bias))
    expected_grads = torch.autograd.grad(reference(hidden, weight, bias, x).sum(), (hidden, weight, bias))
    for got, want in zip(grads, expected_grads):
        assert got.dtype == want.dtype
        assert (got - want).norm() <= 0.05 * want.norm()


def test_summed_embedding_matches_the_sum_of_lookups():
    table = torch.nn.Embedding(12, 5)
    indices = torch.randint(12, (3, 4, 2), generator=torch.Generator().manual_seed(0))  # [K, B, L]
    summed = summed_embedding(table, indices)
    expected = table(indices).sum(-2)
    torch.testing.assert_close(summed, expected)
    grad_output = torch.randn(3, 4, 5)
    (got,) = torch.autograd.grad(summed, table.weight, grad_output)
    (want,) = torch.autograd.grad(expected, table.weight, grad_output)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("base", ["iwae", "dreg", "vimco"])
def test_estimator_gradients_on_the_synthetic_model_match_the_reference_head(small_chunks, base):
    """The whole surrogate, DReG's autograd.grad with respect to z included, gives the reference's gradients."""
    latent = CategoricalLatent(2, 3) if base == "vimco" else GaussianLatent(3)
    torch.manual_seed(0)
    model = SingleSymbolVAE(50, latent, 16)
    x = torch.randint(50, (20,), generator=torch.Generator().manual_seed(0))
    loss_fn = VariationalLoss(base, Objective(ObjectiveKind.RENYI, 0.5, 2.0, 8, 8))  # 160 rows: 3 chunks

    def gradients(log_likelihood):
        model.log_likelihood = log_likelihood
        loss, _ = loss_fn(model, x, torch.Generator().manual_seed(3))
        return loss, torch.autograd.grad(loss, list(model.parameters()))

    fused_loss, fused = gradients(lambda x, z: decoder_log_likelihood(model.decoder, z, x))
    reference_loss, expected = gradients(lambda x, z: common.symbol_log_likelihood(model.decoder(z), x))
    torch.testing.assert_close(fused_loss, reference_loss, rtol=1e-5, atol=1e-5)
    for got, want in zip(fused, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_decoder_must_end_in_a_linear_layer():
    with pytest.raises(TypeError, match="must end in an nn.Linear"):
        decoder_log_likelihood(
            torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()),
            torch.randn(2, 1, 3),
            torch.zeros(1, dtype=torch.long),
        )


@pytest.mark.parametrize("chunked", [False, True])
def test_bfloat16_autocast_log_likelihoods_are_float32_and_close_to_float32(monkeypatch, chunked):
    """Under autocast the logits are bfloat16; the target logit and the log-normaliser are taken in float32,
    the target's from a full-precision dot product: per-sample errors well under the gaps between curves
    (gathering the bfloat16 target logit erred by 0.067 nats here, at logits of about 10)."""
    if chunked:
        monkeypatch.setattr(common, "SMALL_LOGITS_BYTES", 0)
    generator = torch.Generator().manual_seed(0)
    K, B, H, V = 4, 64, 128, 2000  # samples, batch, hidden size, vocabulary
    hidden = torch.randn(K, B, H, generator=generator).tanh()  # [K, B, H], as an LSTM's outputs
    weight = 0.3 * torch.randn(V, H, generator=generator)  # [V, H]
    bias = torch.randn(V, generator=generator)  # [V]
    x = torch.randint(V, (B,), generator=generator)  # [B]
    exact = linear_log_softmax_gather(hidden, weight, bias, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = linear_log_softmax_gather(hidden, weight, bias, x)
    assert mixed.dtype == torch.float32
    assert (mixed - exact).abs().max() < 0.02  # before: 0.067 (bfloat16 result), 0.026 (chunked: a rounded target)
