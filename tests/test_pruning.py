"""GradualPruner: exact per-layer sparsity, selection, LSTM grouping, optimizers, checkpoints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from gradprune.pruning import (
    GradualPruner,
    default_prune_groups,
    kth_smallest,
    n_to_prune,
    select_prune_groups,
    selection,
    unwrap,
)
from gradprune.schedule import CubicSchedule

torch.set_num_threads(1)

ONE_SHOT = CubicSchedule(0.0, 0.5, begin_step=0, frequency=1, n_updates=0)


class Zoo(nn.Module):
    """Every kind of layer the default selection has to decide about."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 5, num_layers=2)
        self.conv = nn.Conv1d(5, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.norm = nn.LayerNorm(4)
        self.cell = nn.LSTMCell(4, 3)
        self.fc = nn.Linear(3, 7)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))  # (T, B, 5)
        c = self.bn(self.conv(h.permute(1, 2, 0)))  # (B, 4, T)
        c = self.norm(c.permute(0, 2, 1)).mean(1)
        return self.fc(self.cell(c)[0])


class TinyLM(nn.Module):
    def __init__(self, vocab=30, hidden=8, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x):
        return self.out(self.lstm(self.emb(x))[0])


def lm_batch(step, vocab=30, seq=6, batch=4):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randint(vocab, (seq + 1, batch), generator=g)


def lm_loss(model, step):
    data = lm_batch(step)
    logits = model(data[:-1])
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), data[1:].reshape(-1))


def zeros_of(mask):
    return int((~mask).sum())


# -- n_to_prune and exact selection ----------------------------------------------------------------
def test_n_to_prune_rounds_half_up():
    assert n_to_prune(0.5, 7) == 4
    assert n_to_prune(0.9, 10) == 9
    assert n_to_prune(0.0, 100) == 0
    assert n_to_prune(0.25, 2) == 1
    assert n_to_prune(0.875, 4_210_000) == 3_683_750


@pytest.mark.parametrize("sample_size", [16, 256, 1 << 16])
def test_kth_smallest_is_exact_on_large_tensors_with_ties(monkeypatch, sample_size):
    monkeypatch.setattr(selection, "_SAMPLE_MIN_NUMEL", 1000)
    monkeypatch.setattr(selection, "_SAMPLE_SIZE", sample_size)
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(50_000, generator=g).abs(),
        torch.randint(0, 4, (50_000,), generator=g).float(),  # massive ties
        torch.cat([torch.zeros(30_000), torch.rand(20_000, generator=g)]),
        torch.full((5_000,), 3.0),
    ]
    for x in tensors:
        n = x.numel()
        for k in (1, 2, n // 10, n // 2, (9 * n) // 10, n - 1, n):
            expect = torch.kthvalue(x, k).values
            got, n_le = selection.select_kth(x, k)
            assert got == expect, (k, got, expect)
            assert n_le == int((x <= expect).sum())
    with pytest.raises(ValueError, match="k must be in"):
        kth_smallest(torch.ones(3), 0)


@pytest.mark.parametrize("extra", [0, 1])
def test_kth_smallest_when_the_sample_misses_the_smallest_values(monkeypatch, extra):
    """Every weight the sample draws is 2, every other 1: the sample's bracket starts at 2, so
    exactly the k = (unsampled count) smallest lie below it; the answer is 1 with k of them (at
    k + 1: 2, with all n), found by the fallback."""
    monkeypatch.setattr(selection, "_SAMPLE_MIN_NUMEL", 1000)
    monkeypatch.setattr(selection, "_SAMPLE_SIZE", 256)
    n = 5_000
    gen = torch.Generator().manual_seed(selection._SAMPLE_SEED)
    sampled = torch.randint(n, (256,), generator=gen)  # the positions select_kth draws
    x = torch.ones(n)
    x[sampled] = 2.0
    ones = int((x == 1).sum())
    got, n_le = selection.select_kth(x, ones + extra)
    assert (float(got), n_le) == ((1.0, ones) if extra == 0 else (2.0, n))


def test_mask_update_does_not_touch_the_global_rng():
    model = nn.Linear(1200, 1000)  # > 2**20 weights: the sampled selection runs
    pruner = GradualPruner(model, ONE_SHOT)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    pruner.prune_to(0.8)
    assert torch.equal(state, torch.get_rng_state())


# -- exact realized sparsity and ties --------------------------------------------------------------
@pytest.mark.parametrize("target", [0.0, 0.1, 0.333, 0.5, 0.77, 0.9, 0.99])
def test_every_group_has_exactly_the_scheduled_number_of_zeros(target):
    torch.manual_seed(0)
    model = Zoo()
    pruner = GradualPruner(model, ONE_SHOT)
    pruner.prune_to(target)
    masks = pruner.masks()
    params = dict(model.named_parameters())
    for group in pruner.groups:
        numel = sum(masks[t].numel() for t in group.tensors)
        assert sum(zeros_of(masks[t]) for t in group.tensors) == n_to_prune(target, numel)
        for t in group.tensors:
            assert torch.all(params[t][~masks[t]] == 0)


def test_exact_sparsity_on_a_large_tensor_with_many_ties():
    # > 2**20 elements (sampled selection) with only 5 distinct magnitudes.
    model = nn.Linear(1100, 1000, bias=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.weight.copy_(torch.randint(-2, 3, (1000, 1100), generator=g).float())
    flat = model.weight.detach().abs().flatten().clone()
    pruner = GradualPruner(model, ONE_SHOT)
    pruner.prune_to(0.7)
    k = n_to_prune(0.7, flat.numel())
    expect_pruned = torch.zeros_like(flat, dtype=torch.bool)
    expect_pruned[torch.sort(flat, stable=True).indices[:k]] = True  # ties: lowest positions first
    assert torch.equal(~pruner.masks()["weight"].flatten(), expect_pruned)


def test_ties_are_broken_by_position_and_deterministic():
    def build():
        model = nn.Linear(8, 4, bias=False)
        with torch.no_grad():
            model.weight.fill_(1.0)
            model.weight[3, 7] = 0.25  # the single smallest goes first
            model.weight[0, 1] = -2.0  # largest, never among the ties
        return model

    masks = []
    for _ in range(2):
        pruner = GradualPruner(build(), ONE_SHOT)
        pruner.prune_to(0.25)  # 8 of 32
        masks.append(pruner.masks()["weight"])
    assert torch.equal(masks[0], masks[1])
    pruned = torch.nonzero(~masks[0].flatten()).flatten().tolist()
    # 0.25 first, then the 7 lowest positions among the tied 1.0s (position 1 holds -2.0)
    assert pruned == [0, 2, 3, 4, 5, 6, 7, 31]


def test_nan_weights_raise():
    model = nn.Linear(4, 4)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN in the weights of weight"):
        GradualPruner(model, ONE_SHOT).prune_to(0.5)


# -- selection ----------------------------------------------------------------------------------------
def test_default_selection_prunes_kernels_and_rnn_weights_only():
    model = Zoo()
    groups = default_prune_groups(model)
    names = [t for g in groups for t in g.tensors]
    assert sorted(names) == sorted(
        [
            "emb.weight",
            "lstm.weight_ih_l0",
            "lstm.weight_hh_l0",
            "lstm.weight_ih_l1",
            "lstm.weight_hh_l1",
            "conv.weight",
            "cell.weight_ih",
            "cell.weight_hh",
            "fc.weight",
        ]
    )
    assert not any("bias" in n or n.startswith(("bn.", "norm.")) for n in names)
    by_name = {g.name: g.tensors for g in groups}
    assert by_name["lstm.l0"] == ["lstm.weight_ih_l0", "lstm.weight_hh_l0"]
    assert by_name["lstm.l1"] == ["lstm.weight_ih_l1", "lstm.weight_hh_l1"]
    assert by_name["cell.cell"] == ["cell.weight_ih", "cell.weight_hh"]
    per_tensor = default_prune_groups(model, lstm_grouping="tensor")
    assert all(len(g.tensors) == 1 for g in per_tensor)
    assert sorted(t for g in per_tensor for t in g.tensors) == sorted(names)
    with pytest.raises(ValueError, match="lstm_grouping"):
        default_prune_groups(model, lstm_grouping="gate")


def test_bidirectional_lstm_layers_are_separate_groups():
    groups = default_prune_groups(nn.LSTM(3, 4, num_layers=1, bidirectional=True))
    assert {g.name: g.tensors for g in groups} == {
        "l0": ["weight_ih_l0", "weight_hh_l0"],
        "l0_reverse": ["weight_ih_l0_reverse", "weight_hh_l0_reverse"],
    }


def test_include_exclude_and_overrides():
    model = Zoo()
    names = lambda gs: sorted(t for g in gs for t in g.tensors)
    assert names(select_prune_groups(model, include=["fc.*", "emb.*"])) == [
        "emb.weight",
        "fc.weight",
    ]
    # a group is excluded as a whole when any of its tensors matches
    chosen = names(select_prune_groups(model, exclude=["lstm.weight_hh_l1", "conv.*"]))
    assert "lstm.weight_ih_l1" not in chosen and "conv.weight" not in chosen
    assert "lstm.weight_ih_l0" in chosen
    groups = select_prune_groups(model, sparsity_overrides={"emb.weight": 0.5, "lstm.*_l1": 0.3})
    finals = {g.name: g.final_sparsity for g in groups}
    assert finals["emb.weight"] == 0.5 and finals["lstm.l1"] == 0.3 and finals["fc.weight"] is None


def test_overrides_reach_their_own_final_sparsity():
    torch.manual_seed(0)
    model = Zoo()
    sched = CubicSchedule(0.0, 0.9, begin_step=0, frequency=2, n_updates=3)
    pruner = GradualPruner(model, sched, sparsity_overrides={"emb.weight": 0.5})
    for step in range(10):
        pruner.step(step)
    report = pruner.sparsity_report()
    assert report["emb.weight"] == n_to_prune(0.5, 120) / 120
    assert report["fc.weight"] == n_to_prune(0.9, 21) / 21


@pytest.mark.parametrize(
    "kwargs, label",
    [
        ({"include": ["fc.wieght"]}, "include pattern 'fc.wieght'"),
        ({"exclude": ["fc.bias"]}, "exclude pattern 'fc.bias'"),
        ({"sparsity_overrides": {"decoder.*": 0.5}}, "override pattern 'decoder.*'"),
    ],
)
def test_bad_patterns_name_the_prunable_weights(kwargs, label):
    with pytest.raises(ValueError) as err:
        GradualPruner(Zoo(), ONE_SHOT, **kwargs)
    text = str(err.value)
    assert label in text and "matches no prunable weight" in text
    for name in ("emb.weight", "lstm.weight_hh_l1", "fc.weight", "cell.weight_ih"):
        assert name in text


def test_other_selection_errors():
    with pytest.raises(ValueError, match="no weight selected"):
        GradualPruner(Zoo(), ONE_SHOT, exclude=["*"])
    with pytest.raises(ValueError, match="conflicting sparsity overrides"):
        GradualPruner(Zoo(), ONE_SHOT, sparsity_overrides={"fc.*": 0.5, "*.weight": 0.3})
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        GradualPruner(Zoo(), ONE_SHOT, sparsity_overrides={"fc.*": 1.0})


def test_tied_weights_are_one_group():
    model = TinyLM(hidden=8)
    model.out.weight = model.emb.weight  # tie (same shape: 30 x 8)
    groups = default_prune_groups(model)
    assert [t for g in groups for t in g.tensors].count("emb.weight") == 1
    assert "out.weight" not in [t for g in groups for t in g.tensors]
    pruner = GradualPruner(model, ONE_SHOT)
    pruner.prune_to(0.5)
    assert zeros_of(pruner.masks()["emb.weight"]) == 120
    assert torch.all(model.out.weight[~pruner.masks()["emb.weight"]] == 0)


# -- LSTM grouping --------------------------------------------------------------------------------------
def test_layer_grouping_shares_one_threshold_and_differs_from_tensor_grouping():
    torch.manual_seed(0)
    base = nn.LSTM(6, 6)
    with torch.no_grad():
        base.weight_hh_l0.mul_(10.0)  # recurrent weights dominate the shared ranking
    layer = nn.LSTM(6, 6)
    layer.load_state_dict(base.state_dict())
    tensor = nn.LSTM(6, 6)
    tensor.load_state_dict(base.state_dict())

    p_layer = GradualPruner(layer, ONE_SHOT)
    p_layer.prune_to(0.5)
    p_tensor = GradualPruner(tensor, ONE_SHOT, lstm_grouping="tensor")
    p_tensor.prune_to(0.5)

    ml, mt = p_layer.masks(), p_tensor.masks()
    assert zeros_of(ml["weight_ih_l0"]) + zeros_of(ml["weight_hh_l0"]) == n_to_prune(0.5, 288)
    assert zeros_of(ml["weight_ih_l0"]) >= 130  # almost all input weights
    assert zeros_of(ml["weight_hh_l0"]) <= 14
    assert zeros_of(mt["weight_ih_l0"]) == zeros_of(mt["weight_hh_l0"]) == 72
    assert not torch.equal(ml["weight_ih_l0"], mt["weight_ih_l0"])
    # one threshold: every kept weight of the layer is at least as large as every pruned one
    mags = torch.cat([base.weight_ih_l0.abs().flatten(), base.weight_hh_l0.abs().flatten()])
    keep = torch.cat([ml["weight_ih_l0"].flatten(), ml["weight_hh_l0"].flatten()])
    assert mags[keep].min() >= mags[~keep].max()


# -- training: gradients, optimizers, monotone masks -----------------------------------------------
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
        lambda ps: torch.optim.Adam(ps, lr=1e-2),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, momentum=0.9, centered=True, weight_decay=1e-4),
    ],
    ids=["sgd-momentum-wd", "adam", "adamw", "sgd-nesterov", "rmsprop"],
)
@pytest.mark.parametrize("attach", [False, True], ids=["re-mask-each-step", "optimizer-attached"])
def test_pruned_weights_get_zero_gradient_and_stay_zero(make_opt, attach):
    """Both modes keep pruned weights exactly zero: re-masking after every step, or (optimizer
    attached) zeroing the optimizer's state at each mask update and skipping the re-mask."""
    torch.manual_seed(0)
    model = TinyLM()
    opt = make_opt(model.parameters())
    sched = CubicSchedule(0.0, 0.8, begin_step=10, frequency=20, n_updates=5)  # last update: 110
    pruner = GradualPruner(model, sched, optimizer=opt if attach else None)
    params = dict(model.named_parameters())
    previous: dict[str, torch.Tensor] = {}
    updates = 0
    for step in range(200):
        opt.zero_grad()
        lm_loss(model, step).backward()
        masks = pruner.masks()
        for name, mask in masks.items():
            assert torch.all(params[name].grad[~mask] == 0), (step, name)
            assert params[name].grad[mask].abs().sum() > 0
        opt.step()
        updates += pruner.step(step)
        masks = pruner.masks()
        for name, mask in masks.items():
            assert torch.all(params[name][~mask] == 0), (step, name)
            if name in previous:
                assert not torch.any(mask & ~previous[name]), "a pruned weight came back"
        previous = masks
    assert updates == 6
    report = pruner.sparsity_report()
    for group in pruner.groups:
        numel = sum(params[t].numel() for t in group.tensors)
        zeros = sum(zeros_of(previous[t]) for t in group.tensors)
        assert zeros == n_to_prune(0.8, numel)
    # Per tensor, grouped LSTM layers may differ from 0.8; the report matches the masks exactly.
    for name, mask in previous.items():
        assert report[name] == pytest.approx(zeros_of(mask) / mask.numel())


def test_masks_never_shrink_even_for_a_lower_target():
    torch.manual_seed(0)
    model = TinyLM()
    pruner = GradualPruner(model, CubicSchedule(0.0, 0.3, begin_step=5, frequency=1, n_updates=2))
    pruner.prune_to(0.6)
    before = pruner.masks()
    for step in range(10):
        pruner.step(step)
    after = pruner.masks()
    for name in before:
        assert torch.equal(before[name], after[name])


def test_live_zero_weights_do_not_revive_pruned_ones():
    model = nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.arange(1, 101, dtype=torch.float32).view(10, 10))
    pruner = GradualPruner(model, ONE_SHOT)
    pruner.prune_to(0.3)  # positions 0..29
    with torch.no_grad():
        model.weight.view(-1)[50:70] = 0.0  # live weights that happen to be 0.0
    pruner.prune_to(0.4)
    pruned = torch.nonzero(~pruner.masks()["weight"].flatten()).flatten().tolist()
    assert pruned == list(range(30)) + list(range(50, 60))


def test_a_missed_pruning_step_is_caught_up():
    model = nn.Linear(10, 10)
    pruner = GradualPruner(model, CubicSchedule(0.0, 0.5, begin_step=0, frequency=5, n_updates=2))
    assert pruner.step(7) is True  # the loop never called step(5)
    assert pruner.history[-1].step == 7
    assert pruner.history[-1].target == pytest.approx(0.5 - 0.5 * 0.5**3)
    assert pruner.step(8) is False
    assert pruner.step(10) is True
    assert pruner.sparsity_report()["weight"] == 0.5


def test_remove_detaches_gradient_hooks():
    model = nn.Linear(4, 4)
    pruner = GradualPruner(model, ONE_SHOT)
    pruner.prune_to(0.5)
    pruner.remove()
    model(torch.ones(2, 4)).sum().backward()
    assert torch.all(model.weight.grad != 0)


# -- plain models and checkpoints ---------------------------------------------------------------------
def test_state_dict_is_plain_and_loads_strictly_into_a_fresh_model():
    torch.manual_seed(0)
    model = Zoo()
    names_before = [n for n, _ in model.named_parameters()]
    keys_before = list(model.state_dict())
    pruner = GradualPruner(model, CubicSchedule(0.0, 0.7, begin_step=0, frequency=1, n_updates=3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randint(20, (5, 3))
    for step in range(6):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        pruner.step(step)
    assert [n for n, _ in model.named_parameters()] == names_before
    assert list(model.state_dict()) == keys_before
    assert all(type(p) is nn.Parameter for p in model.parameters())
    fresh = Zoo()
    fresh.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


def test_history_rows_record_step_target_and_realized():
    torch.manual_seed(0)
    model = TinyLM()
    sched = CubicSchedule(0.1, 0.75, begin_step=2, frequency=3, n_updates=4)
    pruner = GradualPruner(model, sched)
    for step in range(20):
        pruner.step(step)
    rows = pruner.history_rows()
    tensors = pruner.tensor_names
    assert len(rows) == len(sched.update_steps()) * len(tensors)
    assert sorted({r["step"] for r in rows}) == sched.update_steps()
    for r in rows:
        assert set(r) >= {"step", "group", "tensor", "target", "realized", "numel", "nnz"}
        assert r["target"] == sched(r["step"])
        assert r["realized"] == 1.0 - r["nnz"] / r["numel"]
    last = [r for r in rows if r["step"] == sched.end_step]
    assert {r["tensor"] for r in last} == set(tensors)
    # group-level realized sparsity equals the rounded target exactly
    for g in pruner.groups:
        rs = [r for r in last if r["group"] == g.name]
        numel = sum(r["numel"] for r in rs)
        assert numel - sum(r["nnz"] for r in rs) == n_to_prune(0.75, numel)


def test_pruner_state_round_trip_and_refusals():
    torch.manual_seed(0)
    sched = CubicSchedule(0.0, 0.6, begin_step=0, frequency=2, n_updates=2)
    model = TinyLM()
    pruner = GradualPruner(model, sched)
    for step in range(3):
        pruner.step(step)
    state = pruner.state_dict()
    assert all(m.dtype == torch.bool for m in state["masks"].values())

    clone = TinyLM()
    clone.load_state_dict(model.state_dict())
    other = GradualPruner(clone, sched)
    other.load_state_dict(state)
    assert other.last_update_step == 2 and other.history_rows() == pruner.history_rows()
    for name, mask in pruner.masks().items():
        assert torch.equal(other.masks()[name], mask)
    clone.out(torch.ones(1, 8)).sum().backward()
    assert torch.all(clone.out.weight.grad[~other.masks()["out.weight"]] == 0)

    different = CubicSchedule(0.0, 0.7, begin_step=0, frequency=2, n_updates=2)
    with pytest.raises(ValueError, match="resume with the same config"):
        GradualPruner(TinyLM(), different).load_state_dict(state)
    wrong = GradualPruner(TinyLM(hidden=9), sched)
    with pytest.raises(ValueError, match=r"emb.weight has shape \(30, 8\), the weight \(30, 9\)"):
        wrong.load_state_dict(state)
    assert wrong.masks() == {}  # nothing half-loaded
    with pytest.raises(ValueError, match="other tensors or per-tensor sparsities"):
        GradualPruner(TinyLM(), sched, exclude=["emb.*"]).load_state_dict(state)
    with pytest.raises(ValueError, match="lstm_grouping"):
        GradualPruner(TinyLM(), sched, lstm_grouping="tensor").load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        GradualPruner(TinyLM(), sched).load_state_dict({**state, "version": 99})


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from torch import nn
    from gradprune.pruning import GradualPruner
    from gradprune.schedule import CubicSchedule

    torch.set_num_threads(1)
    TOTAL, SPLIT = 40, 17
    SCHED = CubicSchedule(0.0, 0.8, begin_step=4, frequency=5, n_updates=6)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.lstm = nn.LSTM(16, 16, 2, dropout=0.3)
            self.drop = nn.Dropout(0.3)
            self.out = nn.Linear(16, 50)

        def forward(self, x):
            return self.out(self.drop(self.lstm(self.drop(self.emb(x)))[0]))

    def setup():
        torch.manual_seed(0)
        model = LM()
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
        return model, opt, GradualPruner(model, SCHED)

    def train(model, opt, pruner, steps):
        for step in steps:
            data = torch.randint(50, (9, 4), generator=torch.Generator().manual_seed(step))
            opt.zero_grad()
            logits = model(data[:-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, 50), data[1:].reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            pruner.step(step)

    mode, path = sys.argv[1], sys.argv[2]
    if mode == "straight":
        model, opt, pruner = setup()
        train(model, opt, pruner, range(TOTAL))
        torch.save(model.state_dict(), path)
    elif mode == "first":
        model, opt, pruner = setup()
        train(model, opt, pruner, range(SPLIT))
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "pruner": pruner.state_dict(), "rng": torch.get_rng_state()}, path)
    else:
        ckpt = torch.load(path)
        model, opt, pruner = setup()
        torch.manual_seed(12345)  # whatever happened before the load must not matter
        model.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["opt"])
        pruner.load_state_dict(ckpt["pruner"])
        torch.set_rng_state(ckpt["rng"])
        train(model, opt, pruner, range(SPLIT, TOTAL))
        torch.save(model.state_dict(), sys.argv[3])
    """
)


def test_resume_in_a_fresh_process_is_bitwise_identical(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)

    def run(*args):
        subprocess.run([sys.executable, str(script), *args], check=True, cwd=tmp_path, timeout=120)

    run("straight", "straight.pt")
    run("first", "ckpt.pt")
    run("resume", "ckpt.pt", "resumed.pt")
    straight = torch.load(tmp_path / "straight.pt")
    resumed = torch.load(tmp_path / "resumed.pt")
    assert list(straight) == list(resumed)
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    # the run did prune: 80% of every LSTM layer is exactly zero
    w = torch.cat(
        [straight["lstm.weight_ih_l1"].flatten(), straight["lstm.weight_hh_l1"].flatten()]
    )
    assert int((w == 0).sum()) >= n_to_prune(0.8, w.numel())


def test_unwrap_returns_inner_module():
    inner = nn.Linear(2, 2)
    assert unwrap(nn.DataParallel(inner)) is inner
    assert unwrap(inner) is inner
