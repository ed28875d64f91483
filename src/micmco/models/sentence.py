"""The sentence VAE of the language modelling experiments (paper §7.2.2), with the decoder regularisers of §7.2.5.

A data point is a sentence: ``x = (tokens, lengths)``, tokens [B, T] long padded with ``eos_id``,
lengths [B] the real positions including the final ``<eos>``. One set of latents per sentence. The
loaders give a :class:`SentenceBatch` instead, which adds what the host knows of the lengths, so
that a step on a GPU never waits to read them back; a plain pair is made into one on entry.

- Encoder: token embeddings -> a one-layer bidirectional LSTM run on the packed sentences, so the
  backward direction starts at each sentence's last real token; o = the average of the two
  directions' last hidden states; an affine head from o to the parameters of q(z|x).
- Decoder: a unidirectional LSTM whose input at step t is the embedding of token t-1 (``<eos>``
  as the start symbol) plus the latent's input vector; then a softmax over the vocabulary through
  the fused, chunked head of :func:`~micmco.models.common.linear_log_softmax_gather`.
- "Plus the values of the latent variables": z enters as a vector of the embedding size *added* to
  every step's input embedding, a bias-free linear projection of Gaussian z, or the summed
  per-latent category embeddings of categorical z (:class:`~micmco.models.synthetic.CategoricalEmbedding`).
  Adding is concatenation with the z-block of the LSTM's input matrix factored through the
  embedding space (W [e; z] = W_e e + W_z z with W_z = W_e P), so z reaches the gates through the
  same E-dimensional subspace as the words, little of a limit at E = 128 > dim z = 40, and "plus"
  is read literally. In exchange the LSTM input stays E for both latent kinds, input dropout can act
  on the word embedding alone, and z's vector is computed once per sample and broadcast over time.

Regularisers of the decoder only (§7.2.5; the encoder has none), each on in ``train()`` mode only:
input dropout on the token embedding (before z is added, so the latent's path is not dropped),
state dropout on h_{t-1} inside the recurrence (one mask per sequence), output dropout on the LSTM
outputs. Input and output masks are drawn independently per time step, the state mask once per
sequence, as in Melis et al. (2017), whom the paper follows. ``masks: naive`` draws independent
masks for each of the K·B decoder rows, ``shared`` the same masks for all K samples of a sentence
(Figure 12). Masks come from ``model.noise`` (a torch.Generator the loss sets before each step;
None: the global RNG). ``l2`` instead gives :meth:`SentenceVAE.l2_penalty` for the loss to add
(Figure 11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import itemgetter

import torch
from torch import Tensor, nn

from ..config import check, check_choice, check_types
from ..latents import CategoricalLatent, GaussianLatent, LatentConfig, make_latent
from .common import linear_log_softmax_gather
from .recurrent import StateDropoutLSTM, dropout_mask
from .synthetic import CategoricalEmbedding

__all__ = ["SentenceModelConfig", "SentenceVAE", "SentenceBatch", "MASKS", "check_sentences"]

MASKS = ("naive", "shared")
DROPOUTS = ("input_dropout", "state_dropout", "output_dropout")


@dataclass
class SentenceModelConfig:
    embedding_size: int = 128  # size of the token embeddings and of the latent's input vector (paper: 128)
    hidden_size: int = 128  # LSTM state size, encoder (each direction) and decoder (paper: 128 or 256)
    latent: LatentConfig = field(default_factory=LatentConfig)  # 40 gaussian, or 8 categorical of 10 (paper)
    input_dropout: float = 0.0  # decoder: dropout rate on the input token embeddings, per step (Table 2: <= 0.9)
    state_dropout: float = 0.0  # decoder: rate on the recurrent state h_{t-1}, one mask per sequence (<= 0.8)
    output_dropout: float = 0.0  # decoder: rate on the LSTM outputs before the softmax, per step (<= 0.95)
    masks: str = "naive"  # naive: independent masks per latent sample; shared: one set per sentence (Figure 12)
    l2: float = 0.0  # coefficient of the L2 penalty on the weights, model.l2_penalty() (Table 2: 5e-6 to 1e-3)

    def __post_init__(self) -> None:
        check_types(self)
        check(self.embedding_size >= 1, "embedding_size", f"must be >= 1, got {self.embedding_size}")
        check(self.hidden_size >= 1, "hidden_size", f"must be >= 1, got {self.hidden_size}")
        for key in DROPOUTS:
            rate = getattr(self, key)
            check(0.0 <= rate < 1.0, key, f"must be a dropout rate in [0, 1), got {rate}")
        check_choice(self.masks, MASKS, "masks")
        check(math.isfinite(self.l2) and self.l2 >= 0.0, "l2", f"must be a finite number >= 0, got {self.l2}")

    @property
    def dropout(self) -> bool:
        """Whether any dropout rate is set."""
        return any(getattr(self, key) > 0 for key in DROPOUTS)


class SentenceBatch(tuple):
    """A batch of sentences with the host's view of its lengths: (tokens [B, T], lengths [B], positions [N],
    order [B], sorted_lengths). A tuple, so the trainer's ``to_device`` moves its tensors and keeps
    ``sorted_lengths``, plain ints, on the host: the model then never reads a tensor back (on a GPU that
    would make every step wait for the device).

    tokens: long, padded with ``<eos>``; lengths: long, the real positions of each sentence (``<eos>``
    included); positions: the flat indices b·T' + t of the N real positions of tokens[:, :T'], T' the
    longest length, row-major; order: the sentences longest first, as ``pack_padded_sequence`` sorts
    them; sorted_lengths: the lengths in that order, a tuple of ints.
    """

    __slots__ = ()

    def __new__(cls, items) -> SentenceBatch:
        return super().__new__(cls, items)

    tokens = property(itemgetter(0))
    lengths = property(itemgetter(1))
    positions = property(itemgetter(2))
    order = property(itemgetter(3))
    sorted_lengths = property(itemgetter(4))

    @classmethod
    def of(cls, tokens: Tensor, lengths: Tensor) -> SentenceBatch:
        """The batch of a (tokens, lengths) pair, on their device; reads the lengths on the host (where they
        are on a GPU, a synchronisation: the loaders make their batches on the CPU)."""
        host = lengths.cpu()
        sorted_lengths, order = torch.sort(host, descending=True)  # as pack_padded_sequence sorts
        longest = int(sorted_lengths[0])
        real = torch.arange(longest) < host.unsqueeze(1)  # [B, T']
        positions = real.flatten().nonzero().squeeze(1)  # [N]
        device = tokens.device
        return cls((tokens, lengths, positions.to(device), order.to(device), tuple(sorted_lengths.tolist())))

    @property
    def longest(self) -> int:
        """T': the longest sentence's length; positions beyond it are never read."""
        return self.sorted_lengths[0]


def check_sentences(x: tuple[Tensor, Tensor] | SentenceBatch, vocab_size: int) -> SentenceBatch:
    """``x`` as a :class:`SentenceBatch`, or a ValueError naming the argument unless it is a batch of sentences
    (tokens [B, T], lengths [B]).

    tokens: a 2-D long tensor with B >= 1 sentences of T >= 1 positions, ids in [0, vocab_size); lengths: a
    1-D long tensor of B lengths in [1, T] (``<eos>`` counts, so no sentence is empty). Shapes and dtypes
    are checked always; the lengths' values on the host's copy; the token ids of a pair where the tensor is
    on the CPU (reading a GPU tensor's values would synchronise the step with the host), those of a
    SentenceBatch never: the loaders make it from a corpus of the model's vocabulary, and a step reads
    no tensor on the host (micmco.syncaudit checks).
    """
    batch = isinstance(x, SentenceBatch)
    if not (batch or (isinstance(x, (tuple, list)) and len(x) == 2)):
        got = f"a {type(x).__name__}" + (f" shaped {list(x.shape)}" if isinstance(x, Tensor) else "")
        raise ValueError(
            f"x must be a pair (tokens [B, T], lengths [B]) of sentences, got {got}; pad_sentences makes one"
        )
    tokens, lengths = x[:2]
    for name, value, dims in (("tokens", tokens, "[B, T]"), ("lengths", lengths, "[B]")):
        if not isinstance(value, Tensor) or value.dim() != len(dims.split(",")) or value.dtype != torch.long:
            got = f"{value.dtype} {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a long tensor shaped {dims}, got {got}")
    B, T = tokens.shape  # sentences, positions
    if B == 0 or T == 0:
        raise ValueError(f"tokens is an empty batch (shape {[B, T]}); give at least one sentence of at least one token")
    if lengths.shape[0] != B:
        raise ValueError(f"lengths has {lengths.shape[0]} entries but tokens has {B} sentences; one length a sentence")
    if not batch:  # a hand-made pair: reads lengths on the host
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > T:
            raise ValueError(
                f"lengths must be in [1, {T}] (1 to the T = {T} positions of tokens; <eos> counts), got {low} to {high}"
            )
    elif len(x.sorted_lengths) != B or x.sorted_lengths[-1] < 1 or x.longest > T:
        raise ValueError(
            f"a SentenceBatch's sorted_lengths must be B = {B} lengths in [1, {T}]; SentenceBatch.of makes one"
        )
    if not batch and tokens.device.type == "cpu":
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            bad = high if high >= vocab_size else low
            raise ValueError(f"tokens must be ids in [0, {vocab_size}) (the vocabulary), got {bad}")
    return x if batch else SentenceBatch.of(tokens, lengths)


class SentenceVAE(nn.Module):
    """p(x, z) = p(z) Π_t softmax(decoder(x_<t, z))[x_t], q(z|x) from a bidirectional LSTM encoder.

    ``latent`` is the latent space of ``config.latent`` (``make_latent(config.latent)``); ``eos_id``
    is the padding id and the decoder's start symbol. The model provides ``latent``,
    ``proposal(x)`` and ``log_likelihood(x, z)`` like every model of the package, plus
    ``encode``, ``decoder_states`` and ``l2_penalty``. Each entry point checks its sentences
    (:func:`check_sentences`): a bad batch is a ValueError naming the argument, not a PyTorch error.
    """

    def __init__(
        self, vocab_size: int, latent: GaussianLatent | CategoricalLatent, config: SentenceModelConfig, eos_id: int
    ):
        super().__init__()
        expected = make_latent(config.latent)
        if type(latent) is not type(expected) or latent.proposal_size != expected.proposal_size:
            raise ValueError(
                f"latent is a {type(latent).__name__} of proposal size {latent.proposal_size}, but config.latent "
                f"describes a {type(expected).__name__} of size {expected.proposal_size}; "
                "pass make_latent(config.latent)"
            )
        if not 0 <= eos_id < vocab_size:
            raise ValueError(f"eos_id must be a token id in [0, {vocab_size}), got {eos_id}")
        E, H = config.embedding_size, config.hidden_size  # embedding, hidden size
        self.latent = latent
        self.config = config
        self.vocab_size = vocab_size
        self.eos_id = eos_id
        self.noise: torch.Generator | None = None  # the dropout masks' generator, set by the loss before each step
        # Encoder and decoder have separate embeddings, as in the synthetic model: φ and θ share no parameter.
        self.encoder_embedding = nn.Embedding(vocab_size, E)
        self.encoder_lstm = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        # q(z|x)'s head: its name is a key of the checkpoints' state dicts, so it keeps the old word
        self.posterior_head = nn.Linear(H, latent.proposal_size)
        self.decoder_embedding = nn.Embedding(vocab_size, E)
        if isinstance(latent, GaussianLatent):
            # no bias: a constant input would only duplicate the LSTM's own bias
            self.latent_input = nn.Linear(latent.dim, E, bias=False)
        else:
            self.latent_input = CategoricalEmbedding(latent.num_latents, latent.num_categories, E)
        self.decoder_lstm = StateDropoutLSTM(E, H)
        self.output = nn.Linear(H, vocab_size)  # the softmax layer, applied by the fused head
        self.head = "recompute"  # the softmax head (train.head; the task sets it from the run config)

    # --- encoder ---------------------------------------------------------------------------------

    def encode(self, x: tuple[Tensor, Tensor] | SentenceBatch) -> Tensor:
        """o [B, H]: the mean of the forward LSTM's state at the last real token and the backward one's at the first."""
        x = check_sentences(x, self.vocab_size)
        embedded = self.encoder_embedding(x.tokens)  # [B, T, E]
        # Packing runs each direction over the real tokens only. pack_padded_sequence(enforce_sorted=False)
        # would sort the lengths on the host and copy the order to the device: the batch has both already.
        packed = nn.utils.rnn.pack_padded_sequence(
            embedded.index_select(0, x.order), x.sorted_lengths, batch_first=True, enforce_sorted=True
        )
        packed = nn.utils.rnn.PackedSequence(packed.data, packed.batch_sizes, x.order)  # restores the input order
        _, (last, _) = self.encoder_lstm(packed)  # last [2, B, H], in the input order
        return last.mean(0)

    def proposal(self, x: tuple[Tensor, Tensor]):
        """q(z|x) for a batch of sentences."""
        return self.latent.proposal(self.posterior_head(self.encode(x)))

    # --- decoder ---------------------------------------------------------------------------------

    def decoder_states(self, x: tuple[Tensor, Tensor], z: Tensor) -> Tensor:
        """The decoder's outputs after output dropout, [K, B, T, H], T trimmed to the longest sentence.

        Position t has read tokens < t and z and predicts token t. All K·B rows run as one batch.
        """
        x = check_sentences(x, self.vocab_size)
        tokens = x.tokens
        if not isinstance(z, Tensor) or z.dim() < 2 or z.shape[1] != tokens.shape[0]:
            got = list(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"z must be latent samples shaped [K, B, ...] with B = {tokens.shape[0]} sentences, got {got}"
            )
        K, B = z.shape[:2]  # samples, sentences
        T = x.longest  # time: positions beyond every sentence's end are never read
        E, H = self.config.embedding_size, self.config.hidden_size  # embedding, hidden size
        start = tokens.new_full((B, 1), self.eos_id)
        previous = torch.cat([start, tokens[:, : T - 1]], 1)  # [B, T]: the token each position reads
        embedded = self.decoder_embedding(previous)  # [B, T, E], shared by the K samples until masked
        config = self.config
        dropping = self.training and config.dropout
        # G mask groups per sentence: one set of masks for all K samples (shared) or one per sample (naive)
        G = 1 if config.masks == "shared" else K
        if dropping and config.input_dropout > 0:
            embedded = embedded * dropout_mask((G, B, T, E), config.input_dropout, embedded, self.noise)  # [G, B, T, E]
        inputs = embedded + self.latent_input(z).unsqueeze(-2)  # [K, B, T, E]: z's vector added at every step
        state_mask = None
        if dropping and config.state_dropout > 0:
            state_mask = dropout_mask((G, B, H), config.state_dropout, embedded, self.noise)
            state_mask = state_mask.expand(K, B, H).reshape(K * B, H)  # [K·B, H]
        outputs = self.decoder_lstm(inputs.reshape(K * B, T, E), state_mask).reshape(K, B, T, H)
        if dropping and config.output_dropout > 0:
            outputs = outputs * dropout_mask((G, B, T, H), config.output_dropout, outputs, self.noise)
        return outputs

    def log_likelihood(self, x: tuple[Tensor, Tensor] | SentenceBatch, z: Tensor) -> Tensor:
        """ln p(x|z) [K, B]: Σ over each sentence's real positions of ln p(token_t | tokens < t, z)."""
        x = check_sentences(x, self.vocab_size)
        states = self.decoder_states(x, z)  # [K, B, T, H]; checks z
        K, B, T, H = states.shape  # samples, sentences, time, hidden size
        # The head sees the N real positions only (row-major in (b, t)): padding costs no softmax and needs
        # no masking afterwards. The loader gave their indices, so no shape depends on a device's values.
        positions = x.positions  # [N]
        per_token = linear_log_softmax_gather(
            states.reshape(K, B * T, H).index_select(1, positions),
            self.output.weight,
            self.output.bias,
            x.tokens[:, :T].reshape(B * T).index_select(0, positions),
            self.head,
        )  # [K, N]
        # back to [K, B, T] with zeros at the padding, then a deterministic sum over time
        placed = per_token.new_zeros(K, B * T).index_copy(1, positions, per_token)
        return placed.view(K, B, T).sum(-1)

    # --- regularisation --------------------------------------------------------------------------

    def l2_penalty(self) -> Tensor:
        """l2 · Σ w² over the weight matrices and embedding tables of encoder and decoder; biases excluded.

        Biases are excluded as in the usual weight decay: they are O(V + H) numbers that add no
        capacity to overfit with, and shrinking them is harmful, the output bias learns the unigram
        log frequencies and the LSTM gate biases their operating points. The encoder is included:
        its overfitting shows on validation as much as the decoder's. A 0-dim tensor (0 when l2 = 0).
        """
        weights = [p for name, p in self.named_parameters() if not name.rsplit(".", 1)[-1].startswith("bias")]
        if self.config.l2 == 0:
            return weights[0].new_zeros(())
        return self.config.l2 * torch.stack([w.square().sum() for w in weights]).sum()
