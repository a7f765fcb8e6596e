"""Zaremba LSTM language model: the paper's NNZ counts, shapes, determinism, state."""

from __future__ import annotations

import pytest
import torch

from gradprune.counting import count_nnz
from gradprune.models import build_model, prune_include
from gradprune.models.lstm_lm import PRESETS, detach_hidden
from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule


def _pruner(model, sparsity):
    schedule = CubicSchedule(0.0, sparsity, begin_step=0, frequency=1, n_updates=1)
    return GradualPruner(model, schedule, include=prune_include("lstm_lm"))


@pytest.mark.parametrize(
    "size, exact, paper",
    [("large", 66_034_000, 66.0), ("medium", 19_780_400, 19.8), ("small", 4_653_200, 4.65)],
)
def test_dense_counts_are_the_papers(size, exact, paper):
    total = count_nnz(build_model("lstm_lm", size=size)).total
    assert total == exact
    assert abs(total / 1e6 - paper) / paper < 0.01


# (sparsity, exact NNZ, paper's NNZ in millions)
LARGE = [
    (0.8, 13_234_000, 13.2),
    (0.85, 9_934_000, 9.9),
    (0.9, 6_634_000, 6.6),
    (0.95, 3_334_000, 3.3),
    (0.975, 1_684_000, 1.7),
]
MEDIUM = [
    (0.8, 3_972_400, 4.0),
    (0.85, 2_984_400, 3.0),
    (0.9, 1_996_400, 2.0),
    (0.95, 1_008_400, 1.0),
]


@pytest.mark.parametrize("size, rows", [("large", LARGE), ("medium", MEDIUM)])
def test_sparse_counts_are_the_papers(size, rows):
    model = build_model("lstm_lm", size=size)
    pruner = _pruner(model, rows[-1][0])
    for sparsity, exact, paper in rows:
        pruner.prune_to(sparsity)  # masks only grow, so one pruner serves every row
        total = count_nnz(model, pruner.masks()).total
        assert total == exact
        # Equal at the paper's printed digits; within 1.1% (95%: 3.334M vs 3.3M, the two
        # nn.LSTM bias vectors being the 34k parameters that stay dense).
        assert round(total / 1e6, 1) == paper
        assert abs(total / 1e6 - paper) / paper < 0.011


def test_pruned_tensors_and_layer_groups():
    model = build_model("lstm_lm", size="small")
    pruner = _pruner(model, 0.9)
    assert pruner.tensor_names == [
        "embedding.weight",
        "rnn.0.weight_ih_l0",
        "rnn.0.weight_hh_l0",
        "rnn.1.weight_ih_l0",
        "rnn.1.weight_hh_l0",
        "decoder.weight",
    ]
    assert [g.name for g in pruner.groups] == [
        "embedding.weight",
        "rnn.0.l0",
        "rnn.1.l0",
        "decoder.weight",
    ]


def test_presets_and_overrides():
    assert PRESETS == {
        "small": (200, 0.0, 0.1),
        "medium": (650, 0.5, 0.05),
        "large": (1500, 0.65, 0.04),
    }
    m = build_model("lstm_lm", size="medium", hidden=32, vocab_size=50, num_layers=3, dropout=0.1)
    assert len(m.rnn) == 3 and all(layer.hidden_size == 32 for layer in m.rnn) and m.dropout == 0.1
    assert m.embedding.weight.shape == (50, 32) and m.decoder.weight.shape == (50, 32)
    assert m.init_scale == 0.05
    assert all(p.abs().max() <= 0.05 for p in m.parameters())
    with pytest.raises(ValueError, match="small"):
        build_model("lstm_lm", size="huge")


def test_forward_and_hidden_shapes():
    model = build_model("lstm_lm", size="small", vocab_size=100, hidden=16)
    tokens = torch.randint(0, 100, (7, 3))  # (T, B)
    hidden = model.init_hidden(3)
    assert all(h.shape == (2, 3, 16) for h in hidden)
    logits, hidden = model(tokens, hidden)
    assert logits.shape == (7, 3, 100)
    assert all(h.shape == (2, 3, 16) for h in hidden)
    logits.sum().backward()
    hidden = detach_hidden(hidden)
    assert all(not h.requires_grad for h in hidden)
    logits2, _ = model(tokens, hidden)  # the next BPTT segment
    logits2.sum().backward()


def test_init_is_deterministic_under_a_seed():
    torch.manual_seed(0)
    a = build_model("lstm_lm", size="small")
    torch.manual_seed(0)
    b = build_model("lstm_lm", size="small")
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert all(p.abs().max() <= 0.1 for p in a.parameters())


def test_pruned_state_dict_loads_into_fresh_model():
    kwargs = {"size": "medium", "vocab_size": 100, "hidden": 24}
    model = build_model("lstm_lm", **kwargs).eval()
    pruner = _pruner(model, 0.9)
    pruner.prune_to(0.9)
    fresh = build_model("lstm_lm", **kwargs).eval()
    fresh.load_state_dict(model.state_dict())
    params = dict(fresh.named_parameters())
    for name, mask in pruner.masks().items():
        assert torch.all(params[name][~mask] == 0)
    tokens = torch.randint(0, 100, (5, 2))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[0], fresh(tokens)[0])


def test_layer_stack_computes_what_a_multilayer_nn_lstm_computes():
    """One nn.LSTM per layer (so between-layer dropout is on the checkpointed generator, not
    cuDNN's) is the same function as nn.LSTM(num_layers=3) with the same weights."""
    torch.manual_seed(0)
    model = build_model("lstm_lm", size="small", vocab_size=30, hidden=8, num_layers=3).eval()
    ref = torch.nn.LSTM(8, 8, num_layers=3)
    with torch.no_grad():
        for k, layer in enumerate(model.rnn):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{name}_l{k}").copy_(getattr(layer, f"{name}_l0"))
    tokens = torch.randint(30, (5, 2))
    hidden = (torch.randn(3, 2, 8), torch.randn(3, 2, 8))
    logits, (h, c) = model(tokens, hidden)
    out, (h_ref, c_ref) = ref(model.embedding(tokens), hidden)
    torch.testing.assert_close(logits, model.decoder(out))
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
