"""Storage formats of a pruned model, written to disk so their bytes can be counted (RQ3).

A model is its exported state dict plus the masks of its pruned tensors (``model.safetensors``,
see :func:`gradprune.training.checkpoint.export_weights`). Every format stores the *encoded*
tensors (the weights the experiment prunes; see :func:`gradprune.footprint.storage`) in one layout
and every other tensor (biases, normalisation, unpruned kernels) as it is, in float32:

``dense``
    the weight tensor as stored (zeros included); the baseline.
``bitmask``
    1 bit per element of the matrix view (``numpy.packbits``, little bit order, row-major), then
    the kept values in row-major order.
``csr-rel4``
    the paper's CSR(C) (Han et al.'s relative indexing): per row, each kept value is preceded by
    a 4-bit index r = (zeros skipped since the previous stored entry of the row), 0..15; a gap of
    16 or more zeros is bridged by explicit padding entries (value 0, r = 15) every 16 columns.
    Two indices per byte (low nibble first). Row pointers: ``rows + 1`` offsets into the entries
    (padding included), in the smallest unsigned width that holds the entry count
    (:func:`index_dtype`).
``csr``
    ``torch.sparse_csr`` layout: ``crow_indices`` (rows + 1) and ``col_indices`` (one per kept
    value), each in the smallest unsigned width that fits (uint8/16/32, else int64).

``bsr`` (only for experiments that prune in blocks, :mod:`gradprune.pruning.structure`)
    ``torch.sparse_bsr`` layout in the tensor's own block shape [h, w]: ``crow`` (block rows + 1)
    and ``col`` (one block column per kept block), each in the smallest unsigned width, and the
    kept blocks' values as (n_blocks, h, w), zeros inside a kept block included. A dimension that
    is not a multiple of the block is zero-padded to one (the ragged edge blocks are stored whole,
    their padding counted in the bytes); decoding crops it off. The block shapes are in the
    header (``__metadata__["blocks"]``).

Each layout again with int8 values (``<layout>-int8``): symmetric per-tensor linear quantization of
the encoded tensors (:func:`quantize`), the float32 scale stored beside them. Unencoded tensors stay
float32 in every format.

Matrix view (rows, columns) of an encoded tensor: 2-D tensors as stored (``nn.Linear``
(out, in); ``nn.Embedding`` (vocabulary, dim); LSTM ``weight_ih``/``weight_hh`` (4 x hidden, in),
gates stacked i, f, g, o); convolution kernels (out, in/groups, kh, kw) as (out, in/groups x kh x
kw), the im2col GEMM view (C order); 1-D and 0-D tensors as one row.

Container: safetensors, i.e. an 8-byte little-endian header length, a JSON header (every array's
name, dtype, shape and offsets, plus ``__metadata__``: the format and each encoded tensor's
shape), padded with spaces to a multiple of 8 bytes, then the arrays back to back. The header is
the only overhead: ``bytes = header + values + indices`` (:class:`Footprint`).
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

LAYOUTS = ("dense", "bitmask", "csr-rel4", "csr")
PRECISIONS = ("fp32", "int8")
#: Every format of every run: the four layouts, then the same with int8 values.
FORMATS = LAYOUTS + tuple(f"{layout}-int8" for layout in LAYOUTS)
#: Added for the runs of experiments that prune in blocks.
BLOCK_FORMATS = ("bsr", "bsr-int8")

# Array name suffixes of an encoded tensor, by what they hold (byte accounting).
_INDEX_PARTS = ("mask_bits", "crow", "col", "rel4")
_VALUE_PARTS = ("values", "scale")
_REL_BITS = 4
_REL_MAX = (1 << _REL_BITS) - 1  # 15: the largest gap one index can skip


def split_format(fmt: str) -> tuple[str, str]:
    """``"csr-rel4-int8"`` -> ``("csr-rel4", "int8")``; raises on an unknown name."""
    if fmt not in FORMATS + BLOCK_FORMATS:
        raise ValueError(f"unknown storage format {fmt!r}; known: "
                         f"{', '.join(FORMATS + BLOCK_FORMATS)}")
    return (fmt[: -len("-int8")], "int8") if fmt.endswith("-int8") else (fmt, "fp32")


def matrix_view(t: torch.Tensor) -> torch.Tensor:
    """The (rows, columns) view of a tensor (see the module docstring)."""
    return t.reshape(t.shape[0], -1) if t.dim() >= 2 else t.reshape(1, -1)


def index_dtype(max_value: int) -> torch.dtype:
    """The smallest unsigned integer dtype holding ``0..max_value`` (int64 beyond 32 bits: torch
    has too few uint64 operations)."""
    for dtype, bits in ((torch.uint8, 8), (torch.uint16, 16), (torch.uint32, 32)):
        if max_value < (1 << bits):
            return dtype
    return torch.int64


# -- int8 ----------------------------------------------------------------------------------------


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-tensor linear quantization: ``(q int8, scale float32 of shape (1,))`` with
    ``scale = max|w| / 127`` and ``q = round(w / scale)`` in [-127, 127]; zeros stay zeros. An
    all-zero tensor gets scale 1."""
    w = w.detach().float()
    peak = w.abs().max() if w.numel() else torch.tensor(0.0)
    scale = (peak / 127.0) if peak > 0 else torch.tensor(1.0)
    scale = scale.reshape(1).to(torch.float32)
    q = torch.round(w / scale).clamp_(-127, 127).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.to(torch.float32) * scale.reshape(())


def quantized(w: torch.Tensor) -> torch.Tensor:
    """What an int8 format decodes ``w`` to (float32)."""
    return dequantize(*quantize(w))


# -- per-tensor layouts ----------------------------------------------------------------------------


def _pack_nibbles(r: torch.Tensor) -> torch.Tensor:
    # Written here: neither numpy nor torch packs 4-bit values.
    r = r.to(torch.uint8)
    if r.numel() % 2:
        r = torch.cat([r, r.new_zeros(1)])
    return r[0::2] | (r[1::2] << 4)


def _unpack_nibbles(packed: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.stack([packed & 0xF, packed >> 4], dim=1).reshape(-1)
    return out[:n].to(torch.int64)


def _rel4_entries(mask: torch.Tensor, values: torch.Tensor):
    """(row pointers, 4-bit indices, values) of CSR(C) for a 2-D mask and values."""
    n_rows = mask.shape[0]
    rows, cols = mask.nonzero(as_tuple=True)  # row-major order
    kept = values[rows, cols]
    prev = torch.full_like(cols, -1)
    if cols.numel() > 1:
        same_row = rows[1:] == rows[:-1]
        prev[1:] = torch.where(same_row, cols[:-1], prev[1:])
    gap = cols - prev - 1  # zeros skipped before each kept value
    pads = gap // (_REL_MAX + 1)  # one padding entry bridges 16 columns (15 zeros + itself)
    count = pads + 1
    owner = torch.repeat_interleave(torch.arange(cols.numel()), count)
    first = torch.cumsum(count, 0) - count
    is_real = (torch.arange(owner.numel()) - first[owner]) == count[owner] - 1
    rel = torch.where(is_real, gap[owner] % (_REL_MAX + 1), torch.full_like(owner, _REL_MAX))
    vals = torch.where(is_real, kept[owner], kept.new_zeros(()))
    per_row = torch.zeros(n_rows, dtype=torch.int64).index_add_(0, rows, count)
    crow = torch.cat([per_row.new_zeros(1), torch.cumsum(per_row, 0)])
    return crow, rel, vals


def _rel4_decode(crow: torch.Tensor, rel: torch.Tensor, vals: torch.Tensor, shape) -> torch.Tensor:
    n_rows, n_cols = shape
    row_len = crow[1:] - crow[:-1]
    step = torch.cumsum(rel + 1, 0)
    row = torch.repeat_interleave(torch.arange(n_rows), row_len)
    starts = crow[:-1][row]
    base = torch.where(starts > 0, step[(starts - 1).clamp(min=0)], torch.zeros_like(starts))
    col = step - base - 1
    if col.numel() and int(col.max()) >= n_cols:
        raise ValueError("corrupt csr-rel4 data: a column index runs past the row")
    out = torch.zeros(n_rows, n_cols, dtype=vals.dtype)
    out[row, col] = vals
    return out


def _padded(view: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    (h, w), (r, c) = block, view.shape
    return torch.nn.functional.pad(view, (0, -c % w, 0, -r % h))


def encode_bsr(view: torch.Tensor, keep: torch.Tensor, block: tuple[int, int]
               ) -> dict[str, torch.Tensor]:
    """``torch.sparse_bsr`` arrays of a matrix: the blocks holding a kept weight (module doc)."""
    h, w = block
    padded = _padded(view, block)
    rows, cols = padded.shape[0] // h, padded.shape[1] // w
    tiles = padded.reshape(rows, h, cols, w).transpose(1, 2)  # (rows, cols, h, w)
    kept = _padded(keep.to(torch.uint8), block).reshape(rows, h, cols, w).amax(dim=(1, 3)).bool()
    brow, bcol = kept.nonzero(as_tuple=True)  # row-major: the BSR order
    crow = torch.cat([brow.new_zeros(1), torch.cumsum(torch.bincount(brow, minlength=rows), 0)])
    return {"crow": crow.to(index_dtype(int(crow[-1]))),
            "col": bcol.to(index_dtype(max(cols - 1, 0))),
            "values": tiles[brow, bcol].contiguous()}


def decode_bsr(parts: Mapping[str, torch.Tensor], shape: tuple[int, int],
               block: tuple[int, int]) -> torch.Tensor:
    h, w = block
    size = (-(-shape[0] // h) * h, -(-shape[1] // w) * w)
    with warnings.catch_warnings():  # "sparse BSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        bsr = torch.sparse_bsr_tensor(parts["crow"].to(torch.int64), parts["col"].to(torch.int64),
                                      parts["values"], size=size)
        dense = bsr.to_dense()
    return dense[: shape[0], : shape[1]]


def encode_tensor(w: torch.Tensor, mask: torch.Tensor | None, layout: str,
                  block: tuple[int, int] = (1, 1)) -> dict[str, torch.Tensor]:
    """Arrays of one tensor (values float32 or int8 as given) in ``layout``, by part name;
    ``block``: the tensor's block shape (``bsr`` only)."""
    if layout == "dense":
        return {"values": w.contiguous()}
    view = matrix_view(w)
    keep = torch.ones_like(view, dtype=torch.bool) if mask is None else matrix_view(mask).bool()
    if layout == "bitmask":
        bits = np.packbits(keep.reshape(-1).numpy(), bitorder="little")
        return {"mask_bits": torch.from_numpy(bits), "values": view[keep].contiguous()}
    if layout == "csr":
        rows, cols = keep.nonzero(as_tuple=True)
        per_row = torch.bincount(rows, minlength=view.shape[0])
        crow = torch.cat([per_row.new_zeros(1), torch.cumsum(per_row, 0)])
        return {
            "crow": crow.to(index_dtype(int(crow[-1]))),
            "col": cols.to(index_dtype(max(view.shape[1] - 1, 0))),
            "values": view[rows, cols].contiguous(),
        }
    if layout == "csr-rel4":
        crow, rel, vals = _rel4_entries(keep, view)
        return {"crow": crow.to(index_dtype(int(crow[-1]))), "rel4": _pack_nibbles(rel),
                "values": vals.contiguous()}
    if layout == "bsr":
        return encode_bsr(view, keep, tuple(block))
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def decode_tensor(parts: Mapping[str, torch.Tensor], layout: str, shape,
                  block: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """The tensor (values' dtype, original ``shape``) that :func:`encode_tensor` wrote."""
    shape = tuple(shape)
    vals = parts["values"]
    if layout == "dense":
        return vals.reshape(shape)
    rows = shape[0] if len(shape) >= 2 else 1
    cols = int(np.prod(shape[1:])) if len(shape) >= 2 else int(np.prod(shape))
    if layout == "bitmask":
        bits = np.unpackbits(parts["mask_bits"].numpy(), bitorder="little", count=rows * cols)
        keep = torch.from_numpy(bits.astype(bool))
        out = torch.zeros(rows * cols, dtype=vals.dtype)
        out[keep] = vals
        return out.reshape(shape)
    if layout == "bsr":
        return decode_bsr(parts, (rows, cols), tuple(block)).reshape(shape)
    crow = parts["crow"].to(torch.int64)
    if layout == "csr":
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            csr = torch.sparse_csr_tensor(crow, parts["col"].to(torch.int64), vals,
                                          size=(rows, cols))
        return csr.to_dense().reshape(shape)
    if layout == "csr-rel4":
        rel = _unpack_nibbles(parts["rel4"], int(crow[-1]))
        return _rel4_decode(crow, rel, vals, (rows, cols)).reshape(shape)
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


# -- whole models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """Bytes of one format's file: ``total = header + values + indices``.

    ``values``: every value array (encoded values, int8 scales, and the unencoded tensors, of which
    ``unencoded`` counts the bytes); ``indices``: bit-masks, row pointers, column indices.
    """

    format: str
    total: int
    values: int
    indices: int
    header: int
    unencoded: int

    def as_dict(self) -> dict:
        return asdict(self)


def encode_model(state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                 encoded: Iterable[str], fmt: str,
                 blocks: Mapping[str, tuple[int, int]] | None = None
                 ) -> tuple[dict[str, torch.Tensor], dict]:
    """(arrays to write, metadata) of a model in format ``fmt``.

    ``encoded``: names of the tensors stored in the format's layout (the prunable weights); a name
    without a mask is encoded with every element kept. Pruned weights must already be zero.
    ``blocks``: each encoded tensor's block shape (``bsr``; absent: ``(1, 1)``).
    """
    blocks = {k: tuple(v) for k, v in (blocks or {}).items()}
    layout, precision = split_format(fmt)
    encoded = list(dict.fromkeys(encoded))
    missing = [n for n in list(encoded) + list(masks) if n not in state]
    if missing:
        raise KeyError(f"tensors {missing} are not in the state dict")
    unknown = sorted(set(masks) - set(encoded))
    if unknown:
        raise ValueError(f"masked tensors {unknown} are not among the encoded tensors")
    arrays: dict[str, torch.Tensor] = {}
    shapes = {}
    for name, t in state.items():
        if name not in encoded:
            arrays[name] = t.detach().contiguous()
            continue
        w = t.detach().to(torch.float32)
        mask = masks.get(name)
        if mask is not None and bool((w[~mask.bool()] != 0).any()):
            raise ValueError(f"{name}: weights outside its mask are not zero; export the masked "
                             "weights (checkpoint.export_weights writes them so)")
        parts = {}
        if precision == "int8":
            w, parts["scale"] = quantize(w)
        for part, arr in encode_tensor(w, mask, layout, blocks.get(name, (1, 1))).items():
            parts[part] = arr
        for part, arr in parts.items():
            arrays[f"{name}.{part}"] = arr
        shapes[name] = list(t.shape)
    meta = {"format": fmt, "encoded": json.dumps(shapes)}
    if layout == "bsr":
        meta["blocks"] = json.dumps({n: list(blocks.get(n, (1, 1))) for n in shapes})
    return arrays, meta


def write_format(state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                 encoded: Iterable[str], fmt: str, path: str | Path,
                 blocks: Mapping[str, tuple[int, int]] | None = None) -> Footprint:
    """Write the model in format ``fmt`` to ``path`` (safetensors) and count its bytes."""
    arrays, meta = encode_model(state, masks, encoded, fmt, blocks)
    save_file(arrays, str(path), metadata=meta)
    return footprint_of(path, arrays, json.loads(meta["encoded"]))


def footprint_of(path: str | Path, arrays: Mapping[str, torch.Tensor], encoded: Iterable[str]
                 ) -> Footprint:
    """Split a written file's size into header, values and indices (the arrays as written)."""
    total = os.path.getsize(path)
    with open(path, "rb") as fh:
        header = 8 + struct.unpack("<Q", fh.read(8))[0]
    encoded = set(encoded)
    values = indices = unencoded = 0
    for key, arr in arrays.items():
        size = arr.numel() * arr.element_size()
        base, _, part = key.rpartition(".")
        if base in encoded and part in _INDEX_PARTS:
            indices += size
        elif base in encoded and part in _VALUE_PARTS:
            values += size
        else:
            values += size
            unencoded += size
    if header + values + indices != total:
        raise RuntimeError(f"{path}: {total} bytes, but header {header} + arrays "
                           f"{values + indices}: the container added bytes this count misses")
    return Footprint(Path(path).stem, total, values, indices, header, unencoded)


def read_format(path: str | Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(format, state dict) of a file :func:`write_format` wrote: the exact weights for float32
    formats, the dequantized weights (float32) of the encoded tensors for int8 formats."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    if "format" not in meta or "encoded" not in meta:
        raise ValueError(f"{path} is not a gradprune storage-format file (no format metadata)")
    fmt = meta["format"]
    layout, precision = split_format(fmt)
    shapes = json.loads(meta["encoded"])
    blocks = json.loads(meta.get("blocks", "{}"))
    state: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {n: {} for n in shapes}
    for key, arr in arrays.items():
        base, _, part = key.rpartition(".")
        if base in shapes and part in _INDEX_PARTS + _VALUE_PARTS:
            parts[base][part] = arr
        else:
            state[key] = arr
    for name, shape in shapes.items():
        w = decode_tensor(parts[name], layout, shape, tuple(blocks.get(name, (1, 1))))
        state[name] = dequantize(w, parts[name]["scale"]) if precision == "int8" else w
    return fmt, state
