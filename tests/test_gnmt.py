"""GNMT (gnmt_v2): shapes, structure, parameter/NNZ counts of Table 4, pruning groups."""

import pytest
import torch

from gradprune.models import build_model, prune_include
from gradprune.models.gnmt import PRUNE_INCLUDE, gnmt
from gradprune.pruning import GradualPruner, n_to_prune, select_prune_groups
from gradprune.schedule import CubicSchedule

torch.set_num_threads(1)


def _nnz_at(model, sparsity):
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    groups = select_prune_groups(model, PRUNE_INCLUDE)
    sizes = [sum(params[t].numel() for t in g.tensors) for g in groups]
    return total, total - sum(n_to_prune(sparsity, n) for n in sizes)


def test_table4_counts_with_a_36548_piece_vocabulary():
    with torch.device("meta"):
        large = gnmt(1024, vocab_size=36548)
        small = gnmt(512, vocab_size=36548)
    total, _ = _nnz_at(large, 0.8)
    assert total == 210_917_377  # paper / reference: 211M
    assert [round(_nnz_at(large, s)[1] / 1e6) for s in (0.8, 0.85, 0.9)] == [44, 33, 23]
    assert round(sum(p.numel() for p in small.parameters()) / 1e6) == 81


def test_structure_bidirectional_first_layer_attention_in_every_decoder_layer():
    m = gnmt(16, vocab_size=50, num_layers=4)
    enc, dec = m.encoder.layers, m.decoder.cells
    assert enc[0].bidirectional and not any(layer.bidirectional for layer in enc[1:])
    assert enc[1].input_size == 32 and all(layer.input_size == 16 for layer in enc[2:])
    assert all(c.input_size == 32 for c in dec)  # [input; attention] for every decoder layer
    assert m.decoder.projection.bias is None
    groups = [g.name for g in select_prune_groups(m, prune_include("gnmt"))]
    assert "encoder.layers.0.l0_reverse" in groups and "decoder.cells.3.cell" in groups
    assert not any("attention" in g for g in groups)


def test_forward_loss_and_padding_invariance():
    torch.manual_seed(0)
    m = build_model("gnmt", size=16, vocab_size=40, num_layers=3, dropout=0.0).eval()
    src = torch.randint(4, 40, (3, 7))
    lengths = torch.tensor([7, 5, 2])
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    tgt = torch.randint(4, 40, (3, 6))
    logits = m(src, lengths, tgt)
    assert logits.shape == (3, 6, 40)
    # Extra padding on the source changes nothing (packed encoder, masked attention).
    padded = torch.cat([src, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(m(padded, lengths, tgt), logits)
    loss = m.loss(src, lengths, tgt, tgt)
    loss.backward()
    assert torch.isfinite(loss)


def test_pruner_masks_gnmt_weights():
    torch.manual_seed(0)
    m = gnmt(16, vocab_size=40, num_layers=2)
    pruner = GradualPruner(m, CubicSchedule(0.0, 0.8, 0, 1, 1), include=prune_include("gnmt"))
    pruner.prune_to(0.8)
    masks = pruner.masks()
    assert "decoder.cells.0.weight_ih" in masks and "encoder.embedding.weight" in masks
    kept = sum(int(v.sum()) for v in masks.values())
    numel = sum(v.numel() for v in masks.values())
    assert kept / numel == pytest.approx(0.2, abs=0.01)
