"""GNMT as in the TensorFlow NMT tutorial's ``gnmt_v2`` model (wmt16_gnmt_4_layer), for pruning.

Architecture (``num_layers`` encoder and decoder layers, ``units`` everywhere):

- Encoder: embedding -> one bidirectional LSTM layer (``units`` per direction) -> ``num_layers-1``
  unidirectional LSTM layers (the first takes the 2*units concatenation). Residual connections on
  the encoder layers from the third on (TF NMT: ``num_encoder_residual_layers = num_layers - 2``).
- Decoder: embedding -> ``num_layers`` LSTM cells. Cell 0 gets [embedding; previous attention]
  (input feeding of ``AttentionWrapper``); its output is the query of a normalized Bahdanau
  attention over the encoder outputs; the new attention context is concatenated to the input of
  every other cell (``use_new_attention=True``, i.e. gnmt_v2). Residual connections on the top
  ``num_layers - 2`` decoder cells (the attention half of their input is skipped, as in TF NMT's
  ``gnmt_residual_fn``). Output projection ``Linear(units, vocab, bias=False)`` of the top cell.
- The decoder cells start from the encoder's final states (TF NMT ``pass_hidden_state=True``): the
  backward direction's of the bidirectional layer, then each unidirectional layer's. Without this a
  small model on a short run learned a target-side language model and ignored the source (training
  loss equal with the real and with shuffled sources; measured on Multi30k, 128 units).
- Dropout (``dropout``) on every cell's input, as TF NMT's ``DropoutWrapper(input_keep_prob)``.
- Teacher forcing (:meth:`Decoder.forward_sequence`) steps only the bottom cell through time: the
  attention, and so every upper cell's input at step t, depends on the bottom cell alone, so once
  its loop is done each upper cell runs over the whole sequence in one LSTM call (cuDNN on a GPU)
  with the same parameters. Decoding (:meth:`Decoder.step`) steps every cell, one token at a time.
- Every parameter initialised uniformly in [-0.1, 0.1] (TF NMT ``init_op: uniform``), except the
  attention's ``g`` (sqrt(1/units)) and ``b`` (0), as TF; the forget gates start with bias +1, as
  TF's ``BasicLSTMCell(forget_bias=1.0)``.
- Training loss (:meth:`GNMT.loss`): TF NMT's by default, the token losses of each sentence summed
  and averaged over the batch's sentences (``sum_per_sentence``); ``mean_per_token`` is the
  per-token mean (config ``translation.loss``).

Source and target embeddings are separate matrices over one shared subword vocabulary.

Parameter counts (every ``nn.Parameter``; PyTorch LSTMs carry two bias vectors, TF one)::

    4+4 layers, vocab 36,548     1024 units: 210,917,377    512 units: 80,817,153

The vocabulary size decides most of the count (3 * vocab * units): the paper preset uses a
36,548-piece shared sentencepiece BPE vocabulary, which gives the reference's dense 211M (TF NMT's
"BPE 32k" means 32,000 merge operations, whose vocabulary is larger than 32,000 entries; a 32,000
piece vocabulary gives 196.9M dense and 41.1M / 31.4M / 21.7M NNZ). Pruned (:data:`PRUNE_INCLUDE`):
both embeddings, every LSTM weight matrix and the output projection; attention and biases stay
dense (2,172,929 + 73,728 weights at 1024 units). NNZ of the 1024-unit model at 80/85/90%:
43,921,817 / 33,484,597 / 23,047,373 (paper 44M / 33M / 23M); 512 units dense 80.8M (paper 81M).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["GNMT", "LOSS_FORMS", "PRUNE_INCLUDE", "BahdanauNormAttention", "Encoded", "gnmt"]

#: training loss forms of :meth:`GNMT.loss` (the schema's ``translation.loss``)
LOSS_FORMS = ("sum_per_sentence", "mean_per_token")

PRUNE_INCLUDE: tuple[str, ...] = (
    "encoder.embedding.weight",
    "decoder.embedding.weight",
    "encoder.layers.*.weight_*",
    "decoder.cells.*.weight_*",
    "decoder.projection.weight",
)

State = list[tuple[torch.Tensor, torch.Tensor]]


class BahdanauNormAttention(nn.Module):
    """Normalized Bahdanau (additive) attention, as ``tf.contrib.seq2seq.BahdanauAttention(normalize=True)``.

    score(q, m) = g * (v / ||v||) . tanh(W_q q + W_m m + b); softmax over the unpadded memory.
    """

    def __init__(self, query_size: int, memory_size: int, units: int) -> None:
        super().__init__()
        self.memory_layer = nn.Linear(memory_size, units, bias=False)
        self.query_layer = nn.Linear(query_size, units, bias=False)
        self.v = nn.Parameter(torch.empty(units))
        self.g = nn.Parameter(torch.empty(()))
        self.b = nn.Parameter(torch.empty(units))
        self.units = units

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.memory_layer(memory)

    def forward(self, query, keys, memory, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, Q), keys (B, S, U), memory (B, S, M), mask (B, S) True on tokens."""
        v = self.g * self.v / self.v.norm()
        energy = torch.tanh(keys + self.query_layer(query).unsqueeze(1) + self.b)
        scores = energy.matmul(v)  # (B, S)
        scores = scores.masked_fill(~mask, float("-inf"))
        align = torch.softmax(scores, dim=1)
        context = torch.bmm(align.unsqueeze(1), memory).squeeze(1)
        return context, align


class Encoder(nn.Module):
    def __init__(self, vocab: int, units: int, num_layers: int, dropout: float, residual_from: int):
        super().__init__()
        if num_layers < 2:
            raise ValueError("GNMT needs at least 2 encoder layers (one bidirectional, one more)")
        self.embedding = nn.Embedding(vocab, units)
        layers = [nn.LSTM(units, units, batch_first=True, bidirectional=True)]
        layers.append(nn.LSTM(2 * units, units, batch_first=True))
        layers += [nn.LSTM(units, units, batch_first=True) for _ in range(num_layers - 2)]
        self.layers = nn.ModuleList(layers)
        self.drop = nn.Dropout(dropout)
        self.residual_from = residual_from

    def forward(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, State]:
        """src (B, S) token ids, lengths (B,) -> (outputs (B, S, units), zero on padding; final
        states, one (h, c) per layer).

        The final states are those TF NMT's GNMT encoder returns: the backward direction's of
        the bidirectional layer, then each unidirectional layer's (at each sentence's last token).
        """
        x = self.embedding(src)
        total = src.shape[1]
        lengths_cpu = lengths.cpu()
        finals: State = []
        for i, layer in enumerate(self.layers):
            inp = self.drop(x)
            packed = pack_padded_sequence(inp, lengths_cpu, batch_first=True, enforce_sorted=False)
            out, (h, c) = layer(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
            finals.append((h[-1], c[-1]))  # bidirectional: index 1 is the backward direction
            x = out + x if i >= self.residual_from else out
        return x, finals


class Decoder(nn.Module):
    def __init__(self, vocab: int, units: int, num_layers: int, dropout: float, residual_from: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, units)
        self.cells = nn.ModuleList([nn.LSTMCell(2 * units, units) for _ in range(num_layers)])
        self.attention = BahdanauNormAttention(units, units, units)
        self.projection = nn.Linear(units, vocab, bias=False)
        self.drop = nn.Dropout(dropout)
        self.residual_from = residual_from
        self.units = units

    def init_state(self, encoder_state: State, pass_hidden_state: bool) -> tuple[State, torch.Tensor]:
        """Initial (cell states, attention): the encoder's final states (TF NMT
        ``pass_hidden_state=True``, the gnmt_v2 default) or zeros; attention starts at zero."""
        zeros = encoder_state[0][0].new_zeros(encoder_state[0][0].shape[0], self.units)
        if pass_hidden_state:
            return list(encoder_state), zeros
        return [(zeros, zeros) for _ in self.cells], zeros

    def forward_sequence(self, emb, state: State, attention, keys, memory, mask) -> torch.Tensor:
        """Teacher forcing: emb (B, T, U) -> the top cell's outputs (B, T, U), the same as
        :meth:`step` at every t (to float rounding) but with only the bottom cell in the loop.
        Dropout draws its masks in another order than stepping would (per layer, not per step)."""
        h, c = state[0]
        bottom, contexts = [], []
        for t in range(emb.shape[1]):
            h, c = self.cells[0](self.drop(torch.cat([emb[:, t], attention], dim=1)), (h, c))
            attention, _ = self.attention(h, keys, memory, mask)
            bottom.append(h)
            contexts.append(attention)
        x, context = torch.stack(bottom, dim=1), torch.stack(contexts, dim=1)
        for i in range(1, len(self.cells)):
            out = _lstm_over_sequence(self.cells[i], self.drop(torch.cat([x, context], dim=2)), state[i])
            x = out + x if i >= self.residual_from else out
        return x

    def step(self, emb, state: State, attention, keys, memory, mask):
        """One time step: emb (B, U) -> (top output (B, U), new state, new attention (B, U))."""
        h, c = self.cells[0](self.drop(torch.cat([emb, attention], dim=1)), state[0])
        new_state = [(h, c)]
        attention, _ = self.attention(h, keys, memory, mask)
        x = h
        for i in range(1, len(self.cells)):
            h, c = self.cells[i](self.drop(torch.cat([x, attention], dim=1)), state[i])
            new_state.append((h, c))
            x = h + x if i >= self.residual_from else h
        return x, new_state, attention


def _lstm_over_sequence(cell: nn.LSTMCell, inputs: torch.Tensor, state) -> torch.Tensor:
    """``cell`` applied at every step of ``inputs`` (B, T, in) from ``state`` (h, c): the outputs
    (B, T, units). One call of the LSTM operator nn.LSTM runs (cuDNN on a GPU), on the cell's own
    parameters: an nn.LSTM module would hold a second copy of them under other names (the state
    dict, the pruning patterns and the masks are the cell's)."""
    h0, c0 = state
    weights = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    with warnings.catch_warnings():
        # cuDNN copies the four tensors into one buffer per call (they are not one chunk): a few
        # MB per layer, against the step loop it replaces
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
        # (has_biases, num_layers, dropout, train: as nn.LSTM passes its training flag, which
        # cuDNN needs to keep what the backward pass reads; bidirectional, batch_first)
        out, _, _ = torch.lstm(inputs, (h0.unsqueeze(0), c0.unsqueeze(0)), weights, True, 1, 0.0,
                               cell.training, False, True)
    return out


class Encoded(NamedTuple):
    """What the decoder needs of a source batch (every tensor batch-first)."""

    memory: torch.Tensor  # (B, S, units) encoder outputs
    keys: torch.Tensor  # (B, S, units) the attention's memory layer of ``memory``
    mask: torch.Tensor  # (B, S) True on source tokens
    state: State  # the encoder's final (h, c) per layer

    def repeat(self, k: int) -> Encoded:
        """Each sentence repeated ``k`` times consecutively (for a beam of ``k``)."""
        rep = lambda x: x.repeat_interleave(k, dim=0)
        return Encoded(rep(self.memory), rep(self.keys), rep(self.mask),
                       [(rep(h), rep(c)) for h, c in self.state])


class GNMT(nn.Module):
    """Encoder-decoder; build with :func:`gnmt`. Batch-first token tensors."""

    def __init__(self, vocab_size: int, units: int = 1024, num_layers: int = 4,
                 dropout: float = 0.2, init_scale: float = 0.1, pad_id: int = 0,
                 pass_hidden_state: bool = True, forget_bias: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.units, self.num_layers = vocab_size, units, num_layers
        self.pad_id = pad_id
        self.pass_hidden_state = pass_hidden_state
        residual_from = 2  # the third layer on (TF NMT: num_layers - 2 residual layers)
        self.encoder = Encoder(vocab_size, units, num_layers, dropout, residual_from)
        self.decoder = Decoder(vocab_size, units, num_layers, dropout, residual_from)
        self.init_scale, self.forget_bias = init_scale, forget_bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in self.parameters():
            nn.init.uniform_(p, -self.init_scale, self.init_scale)
        att = self.decoder.attention
        with torch.no_grad():
            att.g.fill_(math.sqrt(1.0 / att.units))  # TF: g starts at sqrt(1 / units), b at 0
            att.b.zero_()
            # TF's BasicLSTMCell adds forget_bias (1.0) to the forget gate; PyTorch has no such
            # constant, so it starts in the input bias (gate order i, f, g, o) and stays trainable.
            for name, p in self.named_parameters():
                if ".bias_ih" in name:
                    p[self.units : 2 * self.units] += self.forget_bias

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Encoded:
        memory, state = self.encoder(src, src_lengths)
        keys = self.decoder.attention.keys(memory)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < src_lengths.to(src.device)[:, None]
        return Encoded(memory, keys, mask, state)

    def start(self, enc: Encoded) -> tuple[State, torch.Tensor]:
        """The decoder's initial (cell states, attention) for an encoded batch."""
        return self.decoder.init_state(enc.state, self.pass_hidden_state)

    def forward(self, src, src_lengths, tgt_in) -> torch.Tensor:
        """Teacher-forced logits (B, T, vocab) for decoder inputs ``tgt_in`` (B, T)."""
        enc = self.encode(src, src_lengths)
        dec = self.decoder
        state, attention = self.start(enc)
        top = dec.forward_sequence(dec.embedding(tgt_in), state, attention, enc.keys, enc.memory,
                                   enc.mask)
        return dec.projection(top)

    def loss(self, src, src_lengths, tgt_in, tgt_out, label_smoothing: float = 0.0,
             form: str = "sum_per_sentence", forward=None) -> torch.Tensor:
        """Teacher-forced cross entropy of a batch (padding ignored), in one of :data:`LOSS_FORMS`.

        ``sum_per_sentence`` (TF NMT ``_compute_loss``: ``reduce_sum(crossent * target_weights) /
        batch_size``): the token losses of each sentence summed, averaged over the sentences; the
        scale TF NMT's SGD lr 1.0 is tuned for. ``mean_per_token``: the mean over all target
        tokens of the batch, about (mean target length) times smaller. ``forward``: the module
        that computes the logits, when it wraps this model (DDP must see the forward pass).
        """
        if form not in LOSS_FORMS:
            raise ValueError(f"unknown GNMT loss {form!r}; choose one of {', '.join(LOSS_FORMS)}")
        logits = (forward or self)(src, src_lengths, tgt_in)
        logits, targets = logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1)
        if form == "mean_per_token":
            return F.cross_entropy(logits, targets, ignore_index=self.pad_id,
                                   label_smoothing=label_smoothing)
        total = F.cross_entropy(logits, targets, ignore_index=self.pad_id,
                                label_smoothing=label_smoothing, reduction="sum")
        return total / tgt_out.shape[0]


def gnmt(size=1024, vocab_size: int = 36548, num_layers: int = 4, dropout: float = 0.2,
         init_scale: float = 0.1, pad_id: int = 0, pass_hidden_state: bool = True,
         forget_bias: float = 1.0) -> GNMT:
    """GNMT with ``size`` units per layer (the run path's size)."""
    return GNMT(vocab_size, int(size), num_layers, dropout, init_scale, pad_id,
                pass_hidden_state, forget_bias)
