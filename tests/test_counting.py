"""NNZ counting: connections (kernels, biases, embeddings) count, normalisation parameters do not;
only masks make a weight zero; tied weights once."""

import pytest
import torch
from torch import nn

from gradprune.counting import count_nnz, count_nonzero
from gradprune.pruning import GradualPruner, n_to_prune
from gradprune.schedule import CubicSchedule


def model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    with torch.no_grad():
        m[0].bias.zero_()  # zero-initialised biases still count
        m[3].bias.zero_()
    return m


def connections(m):
    """Every parameter but batch norm's scale and shift (8 + 8 here)."""
    return sum(p.numel() for p in m.parameters()) - 16


def test_dense_nnz_is_the_connection_count():
    m = model()
    n = count_nnz(m)
    assert n.total == n.dense_total == connections(m) == 3 * 8 * 9 + 8 + 5 * 128 + 5
    assert n.sparsity == 0.0
    assert n.millions == connections(m) / 1e6
    assert n.per_tensor["0.bias"] == (8, 8)  # zero-initialised biases are connections
    assert n.not_counted == {"1.weight": 8, "1.bias": 8} and "1.weight" not in n.per_tensor
    # the literal count sees every parameter and the zero biases (BN's shift starts at 0 too)
    assert count_nonzero(m) == connections(m) + 16 - 8 - 8 - 5


@pytest.mark.parametrize("norm", [nn.LayerNorm(8), nn.GroupNorm(2, 8), nn.BatchNorm1d(8)])
def test_normalisation_parameters_are_not_connections(norm):
    m = nn.Sequential(nn.Linear(4, 8), norm, nn.Linear(8, 2, bias=False))
    n = count_nnz(m)
    assert n.total == 4 * 8 + 8 + 8 * 2
    assert set(n.not_counted) == {"1.weight", "1.bias"}
    with pytest.raises(KeyError, match="not counted connections.*1.weight"):
        count_nnz(m, {"1.weight": torch.ones(8, dtype=torch.bool)})


def test_masks_subtract_pruned_weights():
    m = model()
    pruner = GradualPruner(m, CubicSchedule(0.0, 0.5, 0, 1, 0))
    pruner.prune_to(0.75)
    n = count_nnz(m, pruner.masks())
    params = connections(m)
    pruned = n_to_prune(0.75, 8 * 3 * 9) + n_to_prune(0.75, 5 * 128)
    assert n.total == params - pruned
    assert n.dense_total == params
    assert n.per_tensor["3.weight"] == (640 - n_to_prune(0.75, 640), 640)
    assert n.sparsity == pytest.approx(pruned / params)
    assert count_nonzero(m) <= n.total


def test_tied_weights_count_once():
    emb = nn.Embedding(10, 4)
    dec = nn.Linear(4, 10, bias=False)
    dec.weight = emb.weight
    m = nn.ModuleDict({"emb": emb, "dec": dec})
    n = count_nnz(m)
    assert n.total == 40 and list(n.per_tensor) == ["emb.weight"]
    pruner = GradualPruner(m, CubicSchedule(0.0, 0.5, 0, 1, 0))
    pruner.prune_to(0.5)
    assert count_nnz(m, pruner.masks()).total == 20


def test_unknown_mask_names_raise():
    m = model()
    with pytest.raises(KeyError, match="fc.weight"):
        count_nnz(m, {"fc.weight": torch.ones(3, dtype=torch.bool)})


def test_wrapped_models_are_counted_like_plain_ones():
    m = model()
    assert count_nnz(nn.DataParallel(m)).total == count_nnz(m).total
