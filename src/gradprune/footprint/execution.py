"""One inference call of a model, executed dense or with its pruned matrices in ``torch.sparse_csr``.

``mode="dense"`` multiplies the zeros; ``mode="sparse"`` turns every encoded weight (the weights the
experiment prunes, see :mod:`gradprune.footprint.storage`) into a CSR matrix (its matrix view, see
:mod:`gradprune.footprint.formats`) and multiplies with ``torch.sparse`` kernels (MKL's sparse BLAS
in the x86 wheels). Everything else runs the same in both modes.

What one call is, per family:

- vision: the model on one batch of images. Dense mode is the model itself; sparse mode replaces
  each pruned ``nn.Conv2d`` (groups 1) by CSR x im2col columns (1x1 kernels need no im2col) and
  each pruned ``nn.Linear`` by CSR x input.
- lm: one step of the recurrent loop: embedding of one token per sequence, every LSTM layer one
  time step, the softmax layer's logits.
- translation: the encoder over one source batch plus one decoder step (cells, attention,
  output projection) from the start symbol.

``nn.LSTM`` takes no sparse weight, so for the recurrent families both modes run the same explicit
cell code (:func:`lstm_cell`, gate order i, f, g, o as PyTorch's), checked against the model's own
forward in the tests: the only difference between the modes is the matrix product. A pruned
embedding is gathered row by row from its CSR form in sparse mode.

Block-pruned experiments (``pruning.block``) also run a third mode, ``bsr``: ``torch.sparse_bsr`` in
each tensor's block shape (matrices zero-padded to whole blocks, outputs cropped; square blocks
only, MKL's BSR kernels refuse others, which run CSR). Neither kernel wins everywhere on this CPU
(benchmarks/bench_block_kernels.py, README "Block sparsity"): BSR is ahead of CSR at batch 1 in
large blocks, CSR ahead at batch 32, so both are measured and the frontier runs each model its
fastest way.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from gradprune.footprint.formats import matrix_view

MODES = ("dense", "sparse")
#: Block-pruned runs are also executed in ``bsr`` mode (``torch.sparse_bsr`` in their blocks).
BSR_MODE = "bsr"


def to_csr(w: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return matrix_view(w.detach()).to_sparse_csr()


def to_bsr(w: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """The matrix view of ``w`` zero-padded to whole blocks, in ``torch.sparse_bsr``."""
    view = matrix_view(w.detach())
    (h, b), (r, c) = block, view.shape
    padded = F.pad(view, (0, -c % b, 0, -r % h))
    with warnings.catch_warnings():  # "sparse BSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return padded.to_sparse_bsr(tuple(block))


class Product:
    """A weight matrix W (out, in), dense, CSR or (``block`` other than [1, 1]) BSR, and the
    products the models need."""

    def __init__(self, weight: torch.Tensor, sparse: bool, block: tuple[int, int] = (1, 1)) -> None:
        self.sparse = sparse
        self.shape = tuple(matrix_view(weight).shape)
        # MKL's BSR kernels take square blocks only ("MKL Sparse doesn't support matrices with
        # non-square blocks"): other shapes run CSR (latency.json names the kernel per tensor).
        self.bsr = sparse and tuple(block) != (1, 1) and block[0] == block[1]
        if self.bsr:
            self.weight = to_bsr(weight, block)
            self._csr = None  # built on the first row lookup (an embedding)
            self._source = weight
        else:
            self.weight = to_csr(weight) if sparse else matrix_view(weight.detach())

    def left(self, x: torch.Tensor) -> torch.Tensor:
        """W @ x for x (in, n)."""
        if self.bsr:
            x = F.pad(x, (0, 0, 0, self.weight.shape[1] - x.shape[0]))
            return (self.weight @ x)[: self.shape[0]]
        return self.weight @ x

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T for x (n, in), as ``F.linear``."""
        if self.sparse:
            return self.left(x.t()).t()
        return F.linear(x, self.weight)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` of W (an embedding lookup), (len(ids), in)."""
        if not self.sparse:
            return F.embedding(ids, self.weight)
        if self.bsr:  # a gather, not a product: from the CSR form of the same weights
            if self._csr is None:
                self._csr = Product(self._source, sparse=True)
            return self._csr.rows(ids)
        crow, col, val = self.weight.crow_indices(), self.weight.col_indices(), self.weight.values()
        start, count = crow[ids], crow[ids + 1] - crow[ids]
        owner = torch.repeat_interleave(torch.arange(ids.numel()), count)
        first = torch.cumsum(count, 0) - count
        pos = torch.arange(owner.numel()) - first[owner] + start[owner]
        out = val.new_zeros(ids.numel(), self.weight.shape[1])
        out[owner, col[pos]] = val[pos]
        return out


# -- vision ----------------------------------------------------------------------------------------


class SparseConv2d(nn.Module):
    """A Conv2d (groups 1, zero padding) as a CSR matrix times im2col columns."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise NotImplementedError(
                f"sparse execution of a convolution with groups={conv.groups}, padding "
                f"{conv.padding!r} ({conv.padding_mode}): only groups 1 and numeric zero padding")
        self.product = Product(conv.weight, sparse=True)
        self.bias = None if conv.bias is None else conv.bias.detach()
        self.out_channels = conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.pointwise = self.kernel_size == (1, 1) and tuple(self.padding) == (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.pointwise:
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
            oh, ow = x.shape[-2:]
            cols = x.reshape(b, x.shape[1], oh * ow)
        else:
            cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
            oh, ow = (
                (size + 2 * p - d * (k - 1) - 1) // s + 1
                for size, p, d, k, s in zip(x.shape[-2:], self.padding, self.dilation,
                                            self.kernel_size, self.stride)
            )
        k, n = cols.shape[1], cols.shape[2]
        flat = cols[0] if b == 1 else cols.transpose(0, 1).reshape(k, b * n)
        y = self.product.left(flat).reshape(self.out_channels, b, oh, ow)
        # back to (B, C, H, W) in memory: the layers after it are slower on a strided view
        y = y[None, :, 0] if b == 1 else y.transpose(0, 1).contiguous()
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


class SparseLinear(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.product = Product(linear.weight, sparse=True)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.product.linear(x)
        return y if self.bias is None else y + self.bias


def sparse_vision_model(model: nn.Module, encoded: list[str]) -> nn.Module:
    """A copy of ``model`` whose encoded ``weight`` s run as CSR products (see the module doc)."""
    model = copy.deepcopy(model).eval()
    for name in encoded:
        path, _, leaf = name.rpartition(".")
        module = model.get_submodule(path)
        if leaf != "weight" or not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise NotImplementedError(
                f"sparse execution of {name} ({type(module).__name__}): only the weights of "
                "Conv2d and Linear modules are supported")
        swap = SparseConv2d(module) if isinstance(module, nn.Conv2d) else SparseLinear(module)
        parent, _, child = path.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, swap)
    return model


# -- recurrent models ------------------------------------------------------------------------------


def lstm_cell(x, h, c, w_ih: Product, w_hh: Product, bias: torch.Tensor):
    """One LSTM time step (PyTorch's equations and gate order i, f, g, o)."""
    gates = w_ih.linear(x) + w_hh.linear(h) + bias
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class _Weights:
    """The model's tensors by name; products are CSR for encoded weights in sparse mode."""

    def __init__(self, model: nn.Module, encoded: list[str], sparse: bool,
                 blocks: dict | None = None) -> None:
        self.tensors = {k: v.detach() for k, v in model.state_dict().items()}
        self.encoded, self.sparse = set(encoded), sparse
        self.blocks = blocks or {}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def product(self, name: str) -> Product:
        return Product(self.tensors[name], self.sparse and name in self.encoded,
                       self.blocks.get(name, (1, 1)))

    def lstm(self, prefix: str, suffix: str = "") -> tuple[Product, Product, torch.Tensor]:
        """(W_ih, W_hh, b_ih + b_hh) of an ``nn.LSTM`` layer (suffix ``_l0``, ``_l0_reverse``) or
        an ``nn.LSTMCell`` (no suffix)."""
        return (self.product(f"{prefix}.weight_ih{suffix}"),
                self.product(f"{prefix}.weight_hh{suffix}"),
                self[f"{prefix}.bias_ih{suffix}"] + self[f"{prefix}.bias_hh{suffix}"])


class LMStep:
    """One step of a :class:`~gradprune.models.lstm_lm.LSTMLanguageModel`'s recurrent loop."""

    def __init__(self, model: nn.Module, encoded: list[str], mode: str,
                 blocks: dict | None = None) -> None:
        w = _Weights(model, encoded, mode != "dense", blocks if mode == BSR_MODE else None)
        self.embedding = w.product("embedding.weight")
        self.layers = [w.lstm(f"rnn.{k}", "_l0") for k in range(len(model.rnn))]
        self.decoder, self.decoder_bias = w.product("decoder.weight"), w["decoder.bias"]

    def __call__(self, tokens: torch.Tensor, hidden):
        """tokens (B,), hidden (h, c) each (layers, B, H) -> (logits (B, vocab), (h, c))."""
        x = self.embedding.rows(tokens)
        hs, cs = [], []
        for k, (w_ih, w_hh, b) in enumerate(self.layers):
            x, c = lstm_cell(x, hidden[0][k], hidden[1][k], w_ih, w_hh, b)
            hs.append(x)
            cs.append(c)
        return self.decoder.linear(x) + self.decoder_bias, (torch.stack(hs), torch.stack(cs))


def _lstm_sequence(x: torch.Tensor, w_ih: Product, w_hh: Product, b: torch.Tensor,
                   reverse: bool = False):
    """An LSTM layer over x (B, S, in) from a zero state -> (outputs (B, S, H), (h, c) final)."""
    bsz, steps, _ = x.shape
    hidden = w_hh.shape[1]
    inputs = w_ih.linear(x.reshape(bsz * steps, -1)).reshape(bsz, steps, -1) + b
    h = c = x.new_zeros(bsz, hidden)
    outs = [None] * steps
    for t in (reversed(range(steps)) if reverse else range(steps)):
        gates = inputs[:, t] + w_hh.linear(h)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs[t] = h
    return torch.stack(outs, dim=1), (h, c)


class GNMTStep:
    """The encoder of a :class:`~gradprune.models.gnmt.GNMT` over full-length sources (no
    padding) plus one decoder step from the start symbol."""

    def __init__(self, model: nn.Module, encoded: list[str], mode: str, bos: int,
                 blocks: dict | None = None) -> None:
        w = _Weights(model, encoded, mode != "dense", blocks if mode == BSR_MODE else None)
        enc, dec = model.encoder, model.decoder
        self.bos, self.pass_hidden_state = bos, model.pass_hidden_state
        self.src_embedding = w.product("encoder.embedding.weight")
        self.bi = (w.lstm("encoder.layers.0", "_l0"), w.lstm("encoder.layers.0", "_l0_reverse"))
        self.enc_layers = [w.lstm(f"encoder.layers.{i}", "_l0") for i in range(1, len(enc.layers))]
        self.enc_residual_from = enc.residual_from
        self.tgt_embedding = w.product("decoder.embedding.weight")
        self.cells = [w.lstm(f"decoder.cells.{i}") for i in range(len(dec.cells))]
        self.dec_residual_from = dec.residual_from
        self.memory_layer = w.product("decoder.attention.memory_layer.weight")
        self.query_layer = w.product("decoder.attention.query_layer.weight")
        att = "decoder.attention."
        self.att_v = w[att + "g"] * w[att + "v"] / w[att + "v"].norm()
        self.att_b = w[att + "b"]
        self.projection = w.product("decoder.projection.weight")

    def encode(self, src: torch.Tensor):
        bsz, steps = src.shape
        x = self.src_embedding.rows(src.reshape(-1)).reshape(bsz, steps, -1)
        fwd, _ = _lstm_sequence(x, *self.bi[0])
        bwd, final = _lstm_sequence(x, *self.bi[1], reverse=True)
        finals = [final]  # the backward direction's, as the model (TF NMT) passes on
        x = torch.cat([fwd, bwd], dim=2)
        for i, layer in enumerate(self.enc_layers, start=1):
            out, final = _lstm_sequence(x, *layer)
            finals.append(final)
            x = out + x if i >= self.enc_residual_from else out
        keys = self.memory_layer.linear(x.reshape(bsz * steps, -1)).reshape(bsz, steps, -1)
        return x, keys, finals

    def __call__(self, src: torch.Tensor) -> torch.Tensor:
        """src (B, S) -> logits (B, vocab) of the first target token."""
        memory, keys, finals = self.encode(src)
        bsz = src.shape[0]
        zeros = memory.new_zeros(bsz, memory.shape[2])
        state = finals if self.pass_hidden_state else [(zeros, zeros)] * len(self.cells)
        emb = self.tgt_embedding.rows(torch.full((bsz,), self.bos, dtype=torch.long))
        x = torch.cat([emb, zeros], dim=1)
        for i, (w_ih, w_hh, b) in enumerate(self.cells):
            h, _ = lstm_cell(x, *state[i], w_ih, w_hh, b)
            if i == 0:
                query = self.query_layer.linear(h).unsqueeze(1)
                energy = torch.tanh(keys + query + self.att_b)
                align = torch.softmax(energy.matmul(self.att_v), dim=1)
                attention = torch.bmm(align.unsqueeze(1), memory).squeeze(1)
                top = h
            else:
                top = h + top if i >= self.dec_residual_from else h
            if i + 1 < len(self.cells):
                x = torch.cat([top, attention], dim=1)
        return self.projection.linear(top)
