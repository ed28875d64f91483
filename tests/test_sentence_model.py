"""The sentence VAE (§7.2.2) and its decoder regularisers (§7.2.5), on synthetic tokens."""

import math

import pytest
import torch

import micmco.models.sentence as sentence_module
from micmco.config import ConfigError, from_dict
from micmco.gradients import VariationalLoss
from micmco.latents import LatentConfig, make_latent
from micmco.models import SentenceModelConfig, SentenceVAE, common
from micmco.models.recurrent import MaskedRecurrence, StateDropoutLSTM, dropout_mask
from micmco.objectives import Objective

V, EOS = 23, 0  # vocabulary, end-of-sentence (and padding) id
LATENTS = {"gaussian": LatentConfig("gaussian", 3), "categorical": LatentConfig("categorical", 2, 3)}
RATES = ("input_dropout", "state_dropout", "output_dropout")


def make_model(kind="gaussian", seed=0, **settings) -> SentenceVAE:
    torch.manual_seed(seed)
    config = SentenceModelConfig(embedding_size=8, hidden_size=6, latent=LATENTS[kind], **settings)
    return SentenceVAE(V, make_latent(config.latent), config, EOS)


def sentences(lengths, T=None, seed=0, pad=EOS):
    """A batch (tokens [B, T], lengths [B]): random words, <eos> last, then ``pad`` (an id, or None for random ids)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    T = int(lengths.max()) if T is None else T
    tokens = torch.randint(1, V, (len(lengths), T), generator=generator)  # [B, T]
    for row, length in enumerate(lengths.tolist()):
        tokens[row, length - 1] = EOS
        if pad is not None:
            tokens[row, length:] = pad
    return tokens, lengths


def sample(model, x, K, seed=0):
    with torch.no_grad():
        return model.latent.sample(model.proposal(x), K, torch.Generator().manual_seed(seed))


# --- shapes and the likelihood --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_shapes(kind):
    model = make_model(kind).eval()
    x = sentences([5, 2, 7], T=9)
    K, B = 4, 3  # samples, sentences
    assert model.encode(x).shape == (B, 6)
    z = sample(model, x, K)
    assert z.shape == ((K, B, 3) if kind == "gaussian" else (K, B, 2))
    assert model.decoder_states(x, z).shape == (K, B, 7, 6)  # trimmed to the longest sentence
    log_lik = model.log_likelihood(x, z)
    assert log_lik.shape == (K, B) and torch.isfinite(log_lik).all() and (log_lik < 0).all()


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_a_padded_sentence_scores_as_if_alone(kind):
    model = make_model(kind).eval()
    alone = sentences([4], seed=1)
    batch = sentences([9, 4, 7], seed=2, pad=None)  # padding of random ids: it must not be read at all
    batch[0][1, :4] = alone[0][0]  # the same sentence, followed by padding
    with torch.no_grad():
        assert torch.allclose(model.encode(batch)[1], model.encode(alone)[0], atol=1e-6)
        z = sample(model, batch, 5)  # [K, 3, ...]
        log_lik_alone = model.log_likelihood(alone, z[:, 1:2])
        assert torch.allclose(model.log_likelihood(batch, z)[:, 1:2], log_lik_alone, atol=1e-5)


@pytest.mark.parametrize("chunked", [False, True], ids=["reference-head", "fused-head"])
def test_log_likelihood_is_the_sum_over_real_tokens(chunked, monkeypatch):
    if chunked:  # these logits are small enough for the reference path: force the chunked one
        monkeypatch.setattr(common, "SMALL_LOGITS_BYTES", 0)
        monkeypatch.setattr(common, "MIN_CHUNK_ROWS", 3)
        monkeypatch.setattr(common, "CHUNK_BYTES", 5 * 4 * V)
    model = make_model().eval()
    tokens, lengths = x = sentences([6, 1, 3, 6])
    z = sample(model, x, 3)
    states = model.decoder_states(x, z)  # [K, B, T, H]
    log_probs = model.output(states).log_softmax(-1)  # [K, B, T, V]: the full logits
    K, B, T, _ = log_probs.shape  # samples, sentences, time, vocabulary
    per_token = log_probs.gather(-1, tokens.expand(K, B, T).unsqueeze(-1)).squeeze(-1)  # [K, B, T]
    real = torch.arange(T) < lengths.unsqueeze(1)  # [B, T]
    reference = torch.where(real, per_token, 0.0).sum(-1)
    log_lik = model.log_likelihood(x, z)
    assert torch.allclose(log_lik, reference, atol=1e-5)
    grads = torch.autograd.grad(log_lik.sum(), list(model.parameters()), allow_unused=True)
    reference_grads = torch.autograd.grad(reference.sum(), list(model.parameters()), allow_unused=True)
    for grad, expected in zip(grads, reference_grads):
        assert (grad is None) == (expected is None)
        assert grad is None or torch.allclose(grad, expected, atol=1e-5)


def test_decoder_position_t_reads_the_tokens_before_t():
    model = make_model().eval()
    tokens, lengths = x = sentences([6])
    z = sample(model, x, 2)
    changed = tokens.clone()
    changed[0, 2] = 1 + tokens[0, 2] % (V - 1)  # another word at position 2
    before, after = model.decoder_states(x, z), model.decoder_states((changed, lengths), z)
    assert torch.equal(before[:, :, :3], after[:, :, :3])  # positions 0-2 read tokens 0-1 (and <eos> first)
    assert not torch.allclose(before[:, :, 3:], after[:, :, 3:])
    other = sentences([6], seed=5)  # position 0 reads only the start symbol
    assert torch.allclose(model.decoder_states(other, z)[:, :, 0], before[:, :, 0])


# --- with every estimator ------------------------------------------------------------------------

CASES = [("elbo", "gaussian", 4, 4)] + [
    (base, kind, 4, mi) for base, kind in [("iwae", "gaussian"), ("dreg", "gaussian")] for mi in (4, 1)
]
CASES += [(base, "categorical", 4, mi) for base in ("reinforce", "vimco") for mi in (4, 1)]


@pytest.mark.parametrize("objective", ["kl", "renyi"])
@pytest.mark.parametrize("base, kind, K, mi", CASES)
def test_gradients_reach_encoder_and_decoder(base, kind, K, mi, objective):
    rates = dict.fromkeys(RATES, 0.2)
    model = make_model(kind, masks="shared" if mi == 1 else "naive", **rates).train()  # the loop path too
    model.noise = torch.Generator().manual_seed(1)
    loss = VariationalLoss(base, Objective(objective, 0.5, 2.0 if objective == "renyi" else 1.0, K, mi))
    value, metrics = loss(model, sentences([5, 3, 8, 1]), torch.Generator().manual_seed(0))
    value.backward()
    assert torch.isfinite(value) and all(torch.isfinite(m) for m in metrics.values())
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{name} gets no gradient"


def test_a_few_steps_fit_a_batch():
    model = make_model("categorical")
    loss = VariationalLoss("vimco", Objective("kl", 0.5, 1.0, 2, 2))
    optimizer = torch.optim.Adam(model.parameters(), 0.03)
    x = sentences([5, 3, 8, 6], seed=3)
    values = []
    for step in range(40):
        value, _ = loss(model, x, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert sum(values[-5:]) < 0.6 * sum(values[:5])  # from ~17 nats a sentence (ln 23 a token) to ~7


# --- dropout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_dropout_is_on_in_training_only(rate):
    model = make_model(**{rate: 0.5})
    x = sentences([6, 4, 7])
    z = sample(model, x, 3)
    model.eval()
    evaluated = model.log_likelihood(x, z)
    assert torch.equal(model.log_likelihood(x, z), evaluated)
    model.train()
    first, second = model.log_likelihood(x, z), model.log_likelihood(x, z)
    assert not torch.allclose(first, second) and not torch.allclose(first, evaluated)


@pytest.mark.parametrize("rate", RATES)
def test_shared_masks_are_the_same_for_the_samples_of_a_sentence(rate):
    x = sentences([6, 4, 7])
    for masks in ("shared", "naive"):
        model = make_model(masks=masks, **{rate: 0.5}).train()
        z = sample(model, x, 1).expand(4, -1, -1)  # four equal samples: only the masks can tell them apart
        states = model.decoder_states(x, z)  # [K, B, T, H]
        same = [torch.equal(states[k], states[0]) for k in range(1, 4)]
        assert all(same) if masks == "shared" else not any(same), masks


@pytest.mark.parametrize("masks, groups", [("shared", 1), ("naive", 4)])
def test_mask_shapes(masks, groups, monkeypatch):
    shapes = []

    def recording(shape, *args):
        shapes.append(shape)
        return dropout_mask(shape, *args)

    monkeypatch.setattr(sentence_module, "dropout_mask", recording)
    model = make_model(masks=masks, **dict.fromkeys(RATES, 0.3)).train()
    x = sentences([6, 4, 7])
    model.log_likelihood(x, sample(model, x, 4))
    G, B, T, E, H = groups, 3, 7, 8, 6  # mask groups, sentences, time, embedding, hidden size
    # input and output masks per time step; the state mask one per sequence (Gal & Ghahramani)
    assert shapes == [(G, B, T, E), (G, B, H), (G, B, T, H)]


def test_the_noise_generator_makes_the_loss_reproducible():
    model = make_model(masks="naive", **dict.fromkeys(RATES, 0.3)).train()
    loss = VariationalLoss("iwae", Objective("kl", 0.5, 1.0, 4, 4))
    x = sentences([6, 4, 7])

    def run(noise_seed):
        model.noise = torch.Generator().manual_seed(noise_seed)
        value, _ = loss(model, x, torch.Generator().manual_seed(0))
        return value

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


# --- the recurrent layer ---------------------------------------------------------------------------


def test_the_loop_path_equals_the_fused_lstm():
    torch.manual_seed(0)
    lstm = StateDropoutLSTM(5, 6)
    inputs = torch.randn(4, 7, 5, requires_grad=True)  # [N, T, E]
    parameters = [inputs, *lstm.parameters()]
    fused = lstm(inputs)
    fused_grads = torch.autograd.grad(fused.sin().sum(), parameters)
    for mask in (None, torch.ones(4, 6)):  # no mask, and a mask that keeps everything
        looped = lstm.loop(inputs, mask)
        assert torch.allclose(looped, fused, atol=1e-6)
        for grad, expected in zip(torch.autograd.grad(looped.sin().sum(), parameters), fused_grads):
            assert torch.allclose(grad, expected, atol=1e-5)


def test_the_masked_recurrence_matches_autograd_through_lstm_cells():
    torch.manual_seed(0)
    lstm = StateDropoutLSTM(3, 4).double()
    N, T = 3, 5  # rows, time
    inputs = torch.randn(N, T, 3, dtype=torch.float64)
    mask = dropout_mask((N, 4), 0.5, inputs, torch.Generator().manual_seed(0))
    cell = torch.nn.LSTMCell(3, 4).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data.copy_(getattr(lstm.lstm, name + "_l0"))
    h = c = torch.zeros(N, 4, dtype=torch.float64)
    reference = []
    for t in range(T):
        h, c = cell(inputs[:, t], (h * mask, c))
        reference.append(h)
    assert torch.allclose(lstm(inputs, mask), torch.stack(reference, 1), atol=1e-12)
    projected = torch.randn(T, N, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, w: MaskedRecurrence.apply(p, w, mask), (projected, weight))


def test_a_path_only_backward_skips_the_recurrent_weights_gradient(monkeypatch):
    """DReG's path term takes the gradient with respect to the decoder's input alone (autograd.grad): the
    recurrence then skips W_hh's gradient, the same input gradient as a full backward pass gives."""
    torch.manual_seed(0)
    lstm = StateDropoutLSTM(3, 4)
    N, T = 6, 5  # rows, time
    mask = dropout_mask((N, 4), 0.5, torch.empty(0), torch.Generator().manual_seed(0))
    weight_gradients = []  # whether each backward pass of the recurrence made W_hh's gradient
    backward = MaskedRecurrence.backward

    def recording(ctx, grad):
        grads = backward(ctx, grad)
        weight_gradients.append(grads[1] is not None)
        return grads

    monkeypatch.setattr(MaskedRecurrence, "backward", staticmethod(recording))
    inputs = torch.randn(N, T, 3, requires_grad=True)
    (path,) = torch.autograd.grad(lstm(inputs, mask).square().sum(), inputs)
    lstm(inputs, mask).square().sum().backward()
    assert weight_gradients == [False, True]
    assert torch.equal(path, inputs.grad)
    assert lstm.lstm.weight_hh_l0.grad is not None


# --- configuration and the L2 penalty ------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("input_dropout", 1.0),
        ("state_dropout", -0.1),
        ("output_dropout", math.nan),
        ("masks", "per-sample"),
        ("l2", -1e-4),
        ("l2", math.inf),
        ("hidden_size", 0),
        ("embedding_size", 0),
    ],
)
def test_bad_config_values_are_one_line_errors_naming_the_key(key, value):
    with pytest.raises(ConfigError) as error:
        SentenceModelConfig(**{key: value})
    assert error.value.key == key and "\n" not in str(error.value) and str(error.value).startswith(f"{key}: ")


def test_config_from_yaml_mappings():
    config = from_dict(SentenceModelConfig, {"latent": {"kind": "categorical"}, "state_dropout": 0.5})
    assert (config.latent.num_latents, config.latent.num_categories, config.state_dropout) == (8, 10, 0.5)
    assert SentenceModelConfig().latent.num_latents == 40  # the paper's defaults
    with pytest.raises(ConfigError, match=r"^model\.latent\.num_categories: "):
        from_dict(SentenceModelConfig, {"latent": {"kind": "categorical", "num_categories": 1}}, "model")
    with pytest.raises(ConfigError, match=r"^model\.output_dropout: "):
        from_dict(SentenceModelConfig, {"output_dropout": 1}, "model")
    with pytest.raises(ValueError, match="config.latent"):
        SentenceVAE(V, make_latent(LATENTS["categorical"]), SentenceModelConfig(latent=LATENTS["gaussian"]), EOS)


def test_l2_penalty_covers_the_weights_not_the_biases():
    model = make_model(l2=1e-3)
    penalty = model.l2_penalty()
    weights = {name: p for name, p in model.named_parameters() if "bias" not in name}
    assert {"encoder_embedding.weight", "decoder_embedding.weight", "output.weight"} <= set(weights)
    assert torch.allclose(penalty, 1e-3 * sum(p.square().sum() for p in weights.values()))
    penalty.backward()
    assert torch.allclose(model.output.weight.grad, 2e-3 * model.output.weight)
    assert model.output.bias.grad is None
    assert make_model().l2_penalty().item() == 0.0


# --- evaluation per token -------------------------------------------------------------------------


class KnownLikelihood(torch.nn.Module):
    """q(z|x) = p(z) = N(0, 1) and ln p(x|z) = -cost[x] for every z: each sentence's NLL is its cost exactly."""

    def __init__(self):
        super().__init__()
        self.latent = make_latent(LatentConfig("gaussian", 1))
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # evaluation reads the device off a parameter

    def proposal(self, x):
        costs, _ = x
        return self.latent.proposal(torch.zeros(len(costs), 2))

    def log_likelihood(self, x, z):
        costs, _ = x
        return -costs.expand(len(z), len(costs))  # [K, B]


def test_per_token_metrics_of_a_tiny_corpus_by_hand():
    from micmco.evaluation import EvalBatch, EvalConfig, evaluate

    # Three sentences of 2, 3 and 4 tokens with NLL 2, 9 and 20 nats, in batches of two and one.
    batches = [
        EvalBatch((torch.tensor([2.0, 9.0]), None), torch.tensor([2.0, 3.0])),
        EvalBatch((torch.tensor([20.0]), None), torch.tensor([4.0])),
    ]
    metrics = evaluate(KnownLikelihood(), batches, EvalConfig(num_samples=7))
    # Per token over the split: (2 + 9 + 20) / (2 + 3 + 4) = 3.444; not the mean of the sentences' per-token
    # NLLs (1, 3, 5 -> 3) nor that of the batches' (2.2, 5 -> 3.6).
    assert metrics["nll"] == pytest.approx(31 / 9, abs=1e-6)  # float32 log-likelihoods
    assert metrics["units"] == 9
    assert metrics["mutual_information"] == pytest.approx(0.0, abs=1e-6)  # ln p(x|z) does not depend on z
    assert metrics["representational_kl"] == pytest.approx(0.0, abs=1e-6)  # q = p


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_evaluation_in_chunks_of_samples_gives_the_same_numbers(kind, capsys):
    from micmco.evaluation import EvalBatch, EvalConfig, evaluate

    model = make_model(kind, input_dropout=0.3, output_dropout=0.3)  # dropout is off in evaluation
    tokens, lengths = sentences([4, 7, 2, 5])
    batches = [EvalBatch((tokens[rows], lengths[rows]), lengths[rows].double()) for rows in (slice(0, 3), slice(3, 4))]
    whole = evaluate(model, batches, EvalConfig(num_samples=20), seed=3)
    chunked = evaluate(model, batches, EvalConfig(num_samples=20, sample_chunk=7), seed=3, progress=True)
    assert chunked == pytest.approx(whole, rel=1e-6, abs=1e-6)  # float32 rounding of other matmul shapes
    assert "evaluate" in capsys.readouterr().err  # the progress bar over the data points
    with pytest.raises(ConfigError, match="sample_chunk"):
        EvalConfig(sample_chunk=-1)


# --- bad input at the model's entry, pad_sentences and the vocabulary ------------------------------


def bad_batches():
    tokens, lengths = sentences([5, 2, 7], T=9)
    return [
        (tokens, "x must be a pair (tokens [B, T], lengths [B])"),  # tokens without lengths
        ((tokens, lengths.int()), "lengths must be a long tensor shaped [B], got torch.int32"),
        ((tokens[0], lengths), "tokens must be a long tensor shaped [B, T], got torch.int64 [9]"),
        ((tokens, torch.tensor([5, 2, 10])), "lengths must be in [1, 9]"),  # beyond T
        ((tokens, torch.tensor([5, 0, 7])), "lengths must be in [1, 9]"),  # a zero-length sentence
        ((tokens, lengths[:2]), "lengths has 2 entries but tokens has 3 sentences"),
        ((torch.where(tokens == 4, V, tokens), lengths), f"tokens must be ids in [0, {V}) (the vocabulary), got {V}"),
        ((tokens[:0], lengths[:0]), "tokens is an empty batch (shape [0, 9])"),
    ]


@pytest.mark.parametrize("index", range(8))
def test_bad_sentence_batches_are_errors_naming_the_argument(index):
    model = make_model()
    x, message = bad_batches()[index]
    z = torch.zeros(2, 3, 3)  # [K, B, latent dim]
    for entry in (model.encode, model.proposal, lambda x: model.log_likelihood(x, z)):
        with pytest.raises(ValueError) as error:
            entry(x)
        assert message in str(error.value)
    with pytest.raises(ValueError, match=r"z must be latent samples shaped \[K, B, ...\] with B = 3"):
        model.log_likelihood(sentences([5, 2, 7]), torch.zeros(2, 4, 3))


def test_a_sentence_batch_carries_the_hosts_lengths_through_to_device_and_scores_as_its_pair():
    from micmco.models.sentence import SentenceBatch
    from micmco.runtime import to_device

    pair = sentences([4, 7, 2, 7])
    batch = to_device(SentenceBatch.of(*pair), torch.device("cpu"))
    assert isinstance(batch, SentenceBatch) and batch.sorted_lengths == (7, 7, 4, 2)  # plain ints, on the host
    assert batch.positions.tolist() == [b * 7 + t for b, n in enumerate([4, 7, 2, 7]) for t in range(n)]
    model = make_model()
    z = sample(model, pair, 3)
    assert torch.equal(model.log_likelihood(batch, z), model.log_likelihood(pair, z))
    bad = SentenceBatch((*batch[:4], (7, 7, 4)))
    with pytest.raises(ValueError, match="sorted_lengths must be B = 4 lengths"):
        model.proposal(bad)


def test_pad_sentences_refuses_an_empty_sentence_or_batch():
    from micmco.tasks.ptb_data import pad_sentences

    with pytest.raises(ValueError, match="sentence 1 is empty"):
        pad_sentences([torch.tensor([3, 0]), torch.tensor([], dtype=torch.long)])
    with pytest.raises(ValueError, match="sentences is empty"):
        pad_sentences([])
    tokens, lengths, *_ = pad_sentences([torch.tensor([3, 0]), torch.tensor([0])])
    assert tokens.tolist() == [[3, 0], [0, 0]] and lengths.tolist() == [2, 1]


def test_encode_maps_unknown_words_to_unk_and_decode_refuses_unknown_ids(tmp_path):
    from micmco.tasks.ptb_data import Corpus

    corpus = Corpus(tmp_path, 35, ("<eos>", "<unk>", "the", "cat"), {}, {}, {}, {}, {})
    ids = corpus.encode("the dog cat <eos>")
    assert ids.dtype == torch.long and ids.tolist() == [2, 1, 3, 0]
    assert torch.equal(corpus.encode(["the", "cat"]), torch.tensor([2, 3]))
    assert corpus.decode(ids) == "the <unk> cat <eos>" and corpus.decode(corpus.encode("the cat")) == "the cat"
    for bad in (4, -1):
        with pytest.raises(ValueError, match=rf"token id {bad} is not in the vocabulary: ids are in \[0, 4\)"):
            corpus.decode([2, bad])
