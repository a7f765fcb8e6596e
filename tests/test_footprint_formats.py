"""Storage formats: exact round trips, the CSR(C) encoding, and byte accounting on disk."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

from gradprune.footprint.formats import (
    FORMATS,
    LAYOUTS,
    decode_tensor,
    encode_model,
    encode_tensor,
    index_dtype,
    quantize,
    quantized,
    read_format,
    split_format,
    write_format,
)


def _masked(shape, density, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=gen) < density
    return torch.randn(shape, generator=gen) * mask, mask


def _cases():
    """(name, weights, mask) covering the hard cases of every layout."""
    w, m = _masked((6, 200), 0.15)
    m[1] = False  # an all-zero row
    w[1] = 0
    m[2] = False  # gaps of exactly 15, 16, 31, 32 and 63 zeros in one row
    for c in (0, 16, 33, 65, 98, 162):
        m[2, c] = True
    w[2] = torch.where(m[2], torch.arange(200.0) + 1, 0.0)
    m[3] = False  # one value at the end of a row after a long gap
    m[3, 199] = True
    w[3] = torch.where(m[3], torch.tensor(-2.5), torch.tensor(0.0))
    zero_w, zero_m = torch.zeros(4, 33), torch.zeros(4, 33, dtype=torch.bool)
    dense = torch.randn(5, 9)
    conv, conv_m = _masked((8, 3, 3, 3), 0.3, seed=1)
    kept_zero_w, kept_zero_m = _masked((3, 20), 0.5, seed=2)
    kept_zero_w[kept_zero_m.nonzero()[0].tolist()] = 0.0  # a kept weight that is exactly zero
    return [("gaps", w, m), ("all-zero", zero_w, zero_m), ("dense", dense, None),
            ("conv", conv, conv_m), ("kept-zero", kept_zero_w, kept_zero_m),
            ("vector", torch.tensor([0.0, 1.5, 0.0, -2.0]), torch.tensor([False, True, False, True]))]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,w,mask", _cases(), ids=[c[0] for c in _cases()])
def test_every_layout_decodes_the_exact_weights(layout, name, w, mask):
    parts = encode_tensor(w, mask, layout)
    back = decode_tensor(parts, layout, w.shape)
    assert back.dtype == w.dtype and torch.equal(back, w)


def test_csr_rel4_pads_gaps_over_15_with_explicit_zero_entries():
    # Row: values at columns 0, 16 (15 zeros skipped), 33 (16 zeros: one padding entry), then
    # 65 (31 zeros: one padding entry, index 15), 98 (32 zeros: two padding entries, index 0).
    cols = [0, 16, 33, 65, 98]
    w = torch.zeros(1, 100)
    w[0, cols] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    parts = encode_tensor(w, w != 0, "csr-rel4")
    rel = torch.stack([parts["rel4"] & 0xF, parts["rel4"] >> 4], 1).reshape(-1)
    assert parts["crow"].tolist() == [0, 9]
    assert rel[:9].tolist() == [0, 15, 15, 0, 15, 15, 15, 15, 0]
    assert parts["values"].tolist() == [1.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 5.0]
    assert parts["rel4"].numel() == 5  # 9 four-bit indices in 5 bytes


def test_index_widths_are_the_smallest_that_fit():
    assert index_dtype(255) == torch.uint8 and index_dtype(256) == torch.uint16
    assert index_dtype(65535) == torch.uint16 and index_dtype(65536) == torch.uint32
    assert index_dtype(2**32) == torch.int64
    w, m = _masked((4, 300), 0.5)
    parts = encode_tensor(w, m, "csr")
    assert parts["col"].dtype == torch.uint16  # 300 columns do not fit in a byte
    assert parts["crow"].dtype == index_dtype(int(m.sum()))


def test_int8_is_symmetric_per_tensor_and_keeps_zeros():
    w = torch.tensor([[0.0, -2.54, 1.0], [0.0, 0.3, 2.0]])
    q, scale = quantize(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert scale.item() == pytest.approx(2.54 / 127)
    assert q[0, 1] == -127 and q[0, 0] == 0 and q[1, 0] == 0
    assert (quantized(w) - w).abs().max() <= scale.item() / 2 + 1e-7
    zq, zscale = quantize(torch.zeros(3))
    assert zscale.item() == 1.0 and not zq.any()
    # to the nearest level, by hand: scale 1.27 / 127 = 0.01; 1.6 -> 2, -1.6 -> -2, 0.4 -> 0
    q, _ = quantize(torch.tensor([1.27, 0.016, -0.016, 0.004]))
    assert q.tolist() == [127, 2, -2, 0]


def _model_state():
    gen = torch.Generator().manual_seed(3)
    lin, lin_m = _masked((40, 30), 0.2, seed=4)
    conv, conv_m = _masked((16, 8, 1, 1), 0.1, seed=5)
    state = {"fc.weight": lin, "fc.bias": torch.randn(40, generator=gen),
             "conv.weight": conv, "bn.running_mean": torch.randn(16, generator=gen),
             "bn.num_batches_tracked": torch.tensor(7), "emb.weight": torch.randn(12, 6)}
    masks = {"fc.weight": lin_m, "conv.weight": conv_m}
    encoded = ["fc.weight", "conv.weight", "emb.weight"]  # emb: prunable but not pruned here
    return state, masks, encoded


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_decode_to_the_exact_or_the_quantized_weights(tmp_path, fmt):
    state, masks, encoded = _model_state()
    path = tmp_path / f"{fmt}.safetensors"
    fp = write_format(state, masks, encoded, fmt, path)
    got_fmt, back = read_format(path)
    assert got_fmt == fmt and set(back) == set(state)
    int8 = split_format(fmt)[1] == "int8"
    for name, t in state.items():
        want = quantized(t) if int8 and name in encoded else t
        assert torch.equal(back[name], want), name
    # Bytes: the file's size, split exactly into header + values + indices.
    size = path.stat().st_size
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert fp.total == size == fp.header + fp.values + fp.indices
    assert fp.header == 8 + header_len and header_len % 8 == 0


def test_bitmask_bytes_are_one_bit_per_element_plus_the_kept_values(tmp_path):
    state, masks, encoded = _model_state()
    fp = write_format(state, masks, encoded, "bitmask", tmp_path / "b.safetensors")
    expect = 0
    for name, t in state.items():
        if name in encoded:
            nnz = int(masks[name].sum()) if name in masks else t.numel()
            expect += math.ceil(t.numel() / 8) + 4 * nnz
        else:
            expect += t.numel() * t.element_size()  # fp32: 4 per element; the int64 counter: 8
    assert fp.total - fp.header == expect
    fp8 = write_format(state, masks, encoded, "bitmask-int8", tmp_path / "b8.safetensors")
    nnz = sum(int(masks[n].sum()) if n in masks else state[n].numel() for n in encoded)
    assert fp8.values - fp8.unencoded == nnz + 4 * len(encoded)  # 1 byte per value + fp32 scales
    assert fp8.indices == fp.indices


def test_csr_rel4_and_csr_index_bytes(tmp_path):
    state, masks, encoded = _model_state()
    arrays, meta = encode_model(state, masks, encoded, "csr-rel4")
    entries = sum(int(arrays[f"{n}.crow"][-1]) for n in encoded)
    rel_bytes = sum(arrays[f"{n}.rel4"].numel() for n in encoded)
    assert rel_bytes == sum(math.ceil(int(arrays[f"{n}.crow"][-1]) / 2) for n in encoded)
    assert entries >= sum(int(m.sum()) for m in masks.values())
    assert json.loads(meta["encoded"])["conv.weight"] == [16, 8, 1, 1]
    fp = write_format(state, masks, encoded, "csr", tmp_path / "c.safetensors")
    expect = 0
    for n in encoded:
        rows, cols = state[n].shape[0], state[n][0].numel()
        nnz = int(masks[n].sum()) if n in masks else state[n].numel()
        assert cols <= 256  # one byte per column index
        expect += nnz + (rows + 1) * (1 if nnz < 256 else 2)
    assert fp.indices == expect


def test_weights_outside_the_mask_are_refused():
    state, masks, encoded = _model_state()
    state["fc.weight"] = state["fc.weight"].clone()
    state["fc.weight"][~masks["fc.weight"]] = 1.0
    with pytest.raises(ValueError, match="outside its mask"):
        encode_model(state, masks, encoded, "bitmask")
    with pytest.raises(ValueError, match="unknown storage format"):
        split_format("coo")


# -- bsr (block-pruned experiments) ----------------------------------------------------------------


def _block_masked(shape, block, kept_blocks, seed=0):
    """Weights whose kept weights lie in the given (block row, block column) tiles; one weight of
    every kept tile is set to 0 (zeros inside a kept block are stored)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(shape, dtype=torch.bool)
    for i, j in kept_blocks:
        mask[i * block[0]:(i + 1) * block[0], j * block[1]:(j + 1) * block[1]] = True
    w = (torch.randn(shape, generator=gen) + 3.0) * mask
    for i, j in kept_blocks:
        w[i * block[0], j * block[1]] = 0.0
    return w, mask


@pytest.mark.parametrize("shape,block,kept", [
    ((12, 8), (4, 4), [(0, 0), (2, 1)]),             # exact tiling, an all-zero block row (1)
    ((10, 7), (4, 4), [(0, 1), (2, 0), (2, 1)]),     # ragged rows and columns, edge blocks kept
    ((5, 33), (16, 16), [(0, 2)]),                   # block larger than the rows
    ((9, 9), (4, 4), []),                            # nothing kept
])
def test_bsr_stores_the_kept_blocks_and_decodes_the_exact_weights(shape, block, kept):
    w, mask = _block_masked(shape, block, kept)
    parts = encode_tensor(w, mask, "bsr", block)
    # The oracle: the arrays written out by hand from the kept tiles in row-major order.
    kept = sorted(kept)
    rows = math.ceil(shape[0] / block[0])
    crow = [sum(1 for i, _ in kept if i < r) for r in range(rows + 1)]
    assert parts["crow"].tolist() == crow
    assert parts["col"].tolist() == [j for _, j in kept]
    assert parts["crow"].dtype == torch.uint8 and parts["col"].dtype == torch.uint8
    assert tuple(parts["values"].shape) == (len(kept), *block)
    for k, (i, j) in enumerate(kept):
        tile = torch.zeros(block)
        piece = w[i * block[0]:(i + 1) * block[0], j * block[1]:(j + 1) * block[1]]
        tile[: piece.shape[0], : piece.shape[1]] = piece  # ragged: zero padding stored
        assert torch.equal(parts["values"][k], tile)
    assert torch.equal(decode_tensor(parts, "bsr", shape, block), w)
    q, _ = quantize(w)
    assert torch.equal(decode_tensor(encode_tensor(q, mask, "bsr", block), "bsr", shape, block), q)


def test_bsr_files_carry_their_block_shapes_and_count_padding_as_values(tmp_path):
    w, mask = _block_masked((10, 7), (4, 4), [(0, 0), (2, 1)])
    state = {"w": w, "b": torch.ones(3)}
    fp = write_format(state, {"w": mask}, ["w"], "bsr", tmp_path / "m.safetensors",
                      {"w": (4, 4)})
    fmt, back = read_format(tmp_path / "m.safetensors")
    assert fmt == "bsr" and torch.equal(back["w"], w) and torch.equal(back["b"], state["b"])
    assert fp.values == 2 * 16 * 4 + 3 * 4  # two whole 4x4 blocks (padding included) + bias
    assert fp.indices == 4 + 2  # crow (3 block rows + 1) and col, one byte each
    fp8 = write_format(state, {"w": mask}, ["w"], "bsr-int8", tmp_path / "q.safetensors",
                       {"w": (4, 4)})
    assert fp8.values == 2 * 16 + 4 + 3 * 4  # int8 blocks, the float32 scale, the bias
    _, back8 = read_format(tmp_path / "q.safetensors")
    assert torch.equal(back8["w"], quantized(w))
    assert split_format("bsr-int8") == ("bsr", "int8")
