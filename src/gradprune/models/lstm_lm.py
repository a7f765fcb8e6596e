"""Zaremba et al. (2014) LSTM language model (PTB), as pruned by Zhu & Gupta (2017).

Embedding (vocab x hidden) -> dropout -> ``num_layers`` single-layer ``nn.LSTM`` s, each followed by
dropout -> softmax layer (``Linear(hidden, vocab)``, untied from the embedding). Every parameter
is initialised uniformly in [-init_scale, init_scale], as in Zaremba's code. Tokens are
sequence-first, ``(T, B)``, like pytorch/examples' word_language_model; logits are ``(T, B, vocab)``.

Presets (``size``): hidden units / dropout / init scale::

    small   200  0.0   0.1
    medium  650  0.5   0.05
    large  1500  0.65  0.04

Parameter counts (every ``nn.Parameter``; vocab 10k, 2 layers). ``nn.LSTM`` has two bias vectors
per layer (``b_ih`` and ``b_hh``), as Zaremba's Torch code has (two ``nn.Linear`` with biases); the
authors' TensorFlow cell has one. Both round to the paper's digits; we keep ``nn.LSTM`` (cuDNN) and
its two biases::

    size     ours (two biases)   one bias      paper
    large    66,034,000          66,022,000    66.0M
    medium   19,780,400          19,775,200    19.8M
    small     4,653,200           4,651,600    4.65M

Pruning (:data:`PRUNE_INCLUDE`): embedding, every LSTM weight matrix and the softmax weight; the
biases stay dense (34,000 for large). With the pruner's default grouping the input and recurrent
weights of a layer share one threshold. Large model NNZ at 80/85/90/95/97.5%:
13,234,000 / 9,934,000 / 6,634,000 / 3,334,000 / 1,684,000 (paper 13.2/9.9/6.6/3.3/1.7M; all round
to the paper's digits, the 95% row is 1.03% above 3.3M, 0.67% with a single bias). Medium at
80/85/90/95%: 3,972,400 / 2,984,400 / 1,996,400 / 1,008,400 (paper 4.0/3.0/2.0/1.0M).

Why one ``nn.LSTM`` per layer rather than ``nn.LSTM(num_layers=2, dropout=p)``: on a GPU the latter
draws its between-layer dropout inside cuDNN, from a generator state PyTorch keeps apart from
``torch.cuda.get_rng_state`` and cannot checkpoint, so a run resumed after preemption drew other
masks than an uninterrupted one (measured on an H100). Here every dropout is an ``nn.Dropout`` on
the checkpointed generator; the computation is the same, and each layer is still one cuDNN call.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PRESETS", "PRUNE_INCLUDE", "LSTMLanguageModel", "detach_hidden", "lstm_lm"]

# size -> (hidden units, dropout, init scale): Zaremba et al. 2014, section 4.1.
PRESETS: dict[str, tuple[int, float, float]] = {
    "small": (200, 0.0, 0.1),
    "medium": (650, 0.5, 0.05),
    "large": (1500, 0.65, 0.04),
}

# fnmatch patterns on parameter names for ``GradualPruner(include=...)``.
PRUNE_INCLUDE: tuple[str, ...] = ("embedding.weight", "rnn.*.weight_*", "decoder.weight")

Hidden = tuple[torch.Tensor, torch.Tensor]


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT segments (truncated back-propagation through time)."""
    return tuple(h.detach() for h in hidden)  # type: ignore[return-value]


class LSTMLanguageModel(nn.Module):
    """Word-level LSTM language model; build it with :func:`lstm_lm`."""

    def __init__(
        self,
        vocab_size: int,
        hidden: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden
        self.num_layers = num_layers
        self.init_scale = init_scale
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout
        self.rnn = nn.ModuleList(nn.LSTM(hidden, hidden) for _ in range(num_layers))
        self.decoder = nn.Linear(hidden, vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-self.init_scale, self.init_scale)

    def init_hidden(self, batch_size: int) -> Hidden:
        """Zero (h, c) states, each ``(num_layers, batch, hidden)``, on the model's device."""
        w = self.decoder.weight
        shape = (self.num_layers, batch_size, self.hidden_size)
        return (w.new_zeros(shape), w.new_zeros(shape))

    def forward(
        self, tokens: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """``tokens``: ``(T, B)`` int64 -> ``(logits (T, B, vocab), (h, c))``."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (T, B), got shape {tuple(tokens.shape)}")
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        x = self.drop(self.embedding(tokens))
        h0, c0 = hidden
        hs, cs = [], []
        for k, layer in enumerate(self.rnn):
            out, (h, c) = layer(x, (h0[k : k + 1], c0[k : k + 1]))
            hs.append(h)
            cs.append(c)
            x = self.drop(out)  # between layers and before the softmax, as Zaremba
        return self.decoder(x), (torch.cat(hs), torch.cat(cs))


def lstm_lm(
    size: str = "small",
    vocab_size: int = 10000,
    hidden: int | None = None,
    num_layers: int = 2,
    dropout: float | None = None,
    init_scale: float | None = None,
) -> LSTMLanguageModel:
    """Zaremba's ``size`` preset; ``hidden``, ``dropout`` and ``init_scale`` override it."""
    if size not in PRESETS:
        raise ValueError(f"unknown LSTM size {size!r}; known: {', '.join(PRESETS)}")
    p_hidden, p_dropout, p_scale = PRESETS[size]
    return LSTMLanguageModel(
        vocab_size=vocab_size,
        hidden=p_hidden if hidden is None else hidden,
        num_layers=num_layers,
        dropout=p_dropout if dropout is None else dropout,
        init_scale=p_scale if init_scale is None else init_scale,
    )
