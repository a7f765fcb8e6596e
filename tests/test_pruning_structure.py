"""Block and N:M masks: exact counts against a brute-force oracle, ragged edges, masks only grow,
zero gradients under every optimizer, [1, 1] = today's masks bit for bit, plain state dicts,
checkpoint refusals."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from gradprune.pruning import GradualPruner, n_to_prune
from gradprune.pruning.structure import satisfies_n_m
from gradprune.schedule import CubicSchedule

torch.set_num_threads(1)

ONE_SHOT = CubicSchedule(0.0, 0.5, begin_step=0, frequency=1, n_updates=0)
GRADUAL = CubicSchedule(0.0, 0.9, begin_step=5, frequency=10, n_updates=6)


class TinyLM(nn.Module):
    def __init__(self, vocab=30, hidden=8, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x):
        return self.out(self.lstm(self.emb(x))[0])


def lm_loss(model, step, vocab=30):
    g = torch.Generator().manual_seed(1000 + step)
    data = torch.randint(vocab, (7, 4), generator=g)
    logits = model(data[:-1])
    return nn.functional.cross_entropy(logits.reshape(-1, vocab), data[1:].reshape(-1))


def oracle_tiles(w: torch.Tensor, bh: int, bw: int, pooling: str):
    """[(score, tile index, (r0, r1, c0, c1))] in row-major order, by plain Python loops: a
    ragged edge tile is scored over the weights it has."""
    rows, cols = w.shape
    out = []
    for i, r0 in enumerate(range(0, rows, bh)):
        for j, c0 in enumerate(range(0, cols, bw)):
            r1, c1 = min(r0 + bh, rows), min(c0 + bw, cols)
            vals = [abs(float(w[r, c])) for r in range(r0, r1) for c in range(c0, c1)]
            score = max(vals) if pooling == "max" else sum(vals) / len(vals)
            out.append((score, (r0, r1, c0, c1)))
    return out


def oracle_block_mask(weights: list[torch.Tensor], block, pooling, sparsity):
    """The k = round(s * n_tiles) lowest-scored tiles of the group pruned, ties by position."""
    tiles = [(score, t, pos, box) for t, w in enumerate(weights)
             for pos, (score, box) in enumerate(oracle_tiles(w, *block, pooling))]
    k = n_to_prune(sparsity, len(tiles))
    pruned = sorted(tiles, key=lambda x: (x[0], x[1], x[2]))[:k]
    masks = [torch.ones(w.shape, dtype=torch.bool) for w in weights]
    for _, t, _, (r0, r1, c0, c1) in pruned:
        masks[t][r0:r1, c0:c1] = False
    return masks, k


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("shape,block", [((12, 8), (4, 4)), ((10, 7), (4, 3)), ((9, 16), (16, 16)),
                                         ((5, 11), (1, 4))])
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_block_masks_match_a_brute_force_oracle_with_ragged_edges(shape, block, pooling, sparsity):
    torch.manual_seed(sum(shape) + block[0])
    model = nn.Linear(shape[1], shape[0], bias=False)
    pruner = GradualPruner(model, ONE_SHOT, block=block, block_pooling=pooling)
    expected, k = oracle_block_mask([model.weight.detach().clone()], block, pooling, sparsity)
    pruner.prune_to(sparsity)
    mask = pruner.masks()["weight"]
    assert torch.equal(mask, expected[0])
    n_tiles = math.ceil(shape[0] / block[0]) * math.ceil(shape[1] / block[1])
    assert k == n_to_prune(sparsity, n_tiles)
    assert torch.all(model.weight[~mask] == 0) and torch.all(model.weight[mask] != 0)
    assert pruner.sparsity_report()["weight"] == pytest.approx(int((~mask).sum()) / mask.numel())


def test_lstm_layers_rank_their_tiles_under_one_threshold():
    """An LSTM layer's input and recurrent kernels share one threshold over all their tiles, as
    the authors mask the concatenated kernel; the count is round(s * tiles of the layer)."""
    torch.manual_seed(3)
    model = nn.LSTM(6, 5)  # weight_ih_l0 [20, 6], weight_hh_l0 [20, 5]: ragged at [4, 4]
    pruner = GradualPruner(model, ONE_SHOT, block=(4, 4))
    weights = [model.weight_ih_l0.detach().clone(), model.weight_hh_l0.detach().clone()]
    expected, _ = oracle_block_mask(weights, (4, 4), "avg", 0.6)
    pruner.prune_to(0.6)
    masks = pruner.masks()
    assert torch.equal(masks["weight_ih_l0"], expected[0])
    assert torch.equal(masks["weight_hh_l0"], expected[1])


def test_block_one_by_one_is_todays_masks_bit_for_bit():
    """The default path and explicit [1, 1] blocks (any pooling) give identical masks, weights and
    history through a gradual run with an optimizer."""
    runs = []
    for kwargs in ({}, {"block": (1, 1), "block_pooling": "max"}, {"block_map": {"out.*": [1, 1]}}):
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        pruner = GradualPruner(model, GRADUAL, optimizer=opt, **kwargs)
        for step in range(70):
            opt.zero_grad()
            lm_loss(model, step).backward()
            opt.step()
            pruner.step(step)
        runs.append((model.state_dict(), pruner.masks(), pruner.history_rows(),
                     pruner.state_dict()["groups"]))
    for other in runs[1:]:
        for key in runs[0][0]:
            assert torch.equal(runs[0][0][key], other[0][key]), key
        assert runs[0][1].keys() == other[1].keys()
        assert all(torch.equal(runs[0][1][k], other[1][k]) for k in runs[0][1])
        assert runs[0][2] == other[2] and runs[0][3] == other[3]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.5, momentum=0.9, weight_decay=1e-3),
        lambda ps: torch.optim.Adam(ps, lr=1e-2),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        lambda ps: torch.optim.RMSprop(ps, lr=1e-3, momentum=0.9),
    ],
    ids=["sgd", "adam", "adamw", "rmsprop"],
)
@pytest.mark.parametrize("structure", [{"block": (4, 4)}, {"block": (2, 8), "block_pooling": "max"},
                                       {"n_m": (2, 4)}], ids=["b4x4", "b2x8-max", "2:4"])
def test_structured_masks_grow_in_whole_units_and_pruned_weights_stay_zero(make_opt, structure):
    torch.manual_seed(0)
    model = TinyLM(vocab=32, hidden=8)
    opt = make_opt(model.parameters())
    final = 0.5 if "n_m" in structure else 0.9
    sched = CubicSchedule(0.0, final, begin_step=5, frequency=10, n_updates=6)
    pruner = GradualPruner(model, sched, optimizer=opt, **structure)
    params = dict(model.named_parameters())
    previous = {}
    for step in range(80):
        opt.zero_grad()
        lm_loss(model, step, vocab=32).backward()
        for name, mask in pruner.masks().items():
            assert torch.all(params[name].grad[~mask] == 0), (step, name)
        opt.step()
        pruner.step(step)
        for name, mask in pruner.masks().items():
            assert torch.all(params[name][~mask] == 0), (step, name)
            if name in previous:
                assert not torch.any(mask & ~previous[name]), "a pruned weight came back"
            if "block" in structure:  # every tile is wholly kept or wholly pruned
                bh, bw = structure["block"]
                r, c = mask.shape
                for r0, c0 in itertools.product(range(0, r, bh), range(0, c, bw)):
                    tile = mask[r0:r0 + bh, c0:c0 + bw]
                    assert bool(tile.all()) or not bool(tile.any()), (name, r0, c0)
            previous[name] = mask
    if "n_m" in structure:  # at 1 - N/M every group of 4 keeps exactly 2
        for name, mask in previous.items():
            assert satisfies_n_m(mask, (2, 4)), name
            assert int(mask.sum()) * 2 == mask.numel(), name


def oracle_n_m(w: torch.Tensor, n: int, m: int, sparsity: float) -> torch.Tensor:
    """Greedy: weights in ascending (|w|, position), pruned unless their group of M already lost
    M - N, until round(s * numel) are pruned."""
    flat = [(abs(float(v)), i) for i, v in enumerate(w.flatten())]
    k = n_to_prune(sparsity, w.numel())
    lost: dict[int, int] = {}
    mask = torch.ones(w.numel(), dtype=torch.bool)
    done = 0
    for _, i in sorted(flat):
        if done == k:
            break
        group = i // m  # rows divide into groups of m, so flat groups are row groups
        if lost.get(group, 0) < m - n:
            lost[group] = lost.get(group, 0) + 1
            mask[i] = False
            done += 1
    return mask.view_as(w)


@pytest.mark.parametrize("n_m,sparsity", [((2, 4), 0.2), ((2, 4), 0.4), ((2, 4), 0.5),
                                          ((1, 4), 0.5), ((1, 4), 0.75), ((4, 8), 0.3)])
def test_n_m_masks_match_the_capped_greedy_oracle(n_m, sparsity):
    torch.manual_seed(7)
    model = nn.Linear(16, 6, bias=False)
    with torch.no_grad():  # ties: the greedy's positional order must be matched
        model.weight.view(-1)[::5] = 0.25
    expected = oracle_n_m(model.weight.detach().clone(), *n_m, sparsity)
    pruner = GradualPruner(model, ONE_SHOT, n_m=n_m)
    pruner.prune_to(sparsity)
    assert torch.equal(pruner.masks()["weight"], expected)


def test_n_m_refuses_a_sparsity_above_its_cap_and_shapes_it_cannot_group():
    model = nn.Linear(16, 6)
    pruner = GradualPruner(model, ONE_SHOT, n_m=(2, 4))
    with pytest.raises(ValueError, match="above what an 2:4 mask can hold"):
        pruner.prune_to(0.6)
    with pytest.raises(ValueError, match="groups of 4"):
        GradualPruner(nn.Linear(10, 6), ONE_SHOT, n_m=(2, 4))
    with pytest.raises(ValueError, match="exclude each other"):
        GradualPruner(model, ONE_SHOT, n_m=(2, 4), block=(4, 4))


def test_block_options_that_cannot_apply_are_refused_with_the_fix():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    GradualPruner(conv, ONE_SHOT, block=(2, 2))  # the default block skips the 4-D kernel
    with pytest.raises(ValueError, match="2-D weights only"):
        GradualPruner(conv, ONE_SHOT, block_map={"0.weight": [2, 2]})
    with pytest.raises(ValueError, match="matches no pruned weight"):
        GradualPruner(conv, ONE_SHOT, block_map={"nothing.*": [2, 2]})
    with pytest.raises(ValueError, match="positive integers"):
        GradualPruner(conv, ONE_SHOT, block=(0, 2))
    with pytest.raises(ValueError, match="pooling"):
        GradualPruner(conv, ONE_SHOT, block=(2, 2), block_pooling="median")


def test_block_map_gives_per_tensor_blocks():
    torch.manual_seed(1)
    model = TinyLM(vocab=32, hidden=8)
    pruner = GradualPruner(model, ONE_SHOT, block=(4, 4), block_map={"out.weight": [1, 8]})
    pruner.prune_to(0.5)
    out = pruner.masks()["out.weight"]  # [32, 8]: whole rows of 8
    assert all(bool(row.all()) or not bool(row.any()) for row in out)
    expected, _ = oracle_block_mask([model.out.weight.detach().clone()], (1, 8), "avg", 0.5)
    assert torch.equal(out, expected[0])
    emb = pruner.masks()["emb.weight"]
    expected, _ = oracle_block_mask([model.emb.weight.detach().clone()], (4, 4), "avg", 0.5)
    assert torch.equal(emb, expected[0])


def test_a_block_pruned_state_dict_loads_into_an_unpruned_model_and_checkpoints_guard_structure():
    torch.manual_seed(0)
    model = TinyLM()
    pruner = GradualPruner(model, GRADUAL, block=(4, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(40):
        opt.zero_grad()
        lm_loss(model, step).backward()
        opt.step()
        pruner.step(step)
    fresh = TinyLM()
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.randint(30, (6, 2))
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
    state = pruner.state_dict()
    assert state["groups"][0]["structure"] == [{"block": [4, 4], "pooling": "avg"}]
    same = GradualPruner(fresh, GRADUAL, block=(4, 4))
    same.load_state_dict(state)
    assert all(torch.equal(same.masks()[k], pruner.masks()[k]) for k in pruner.masks())
    for other in ({}, {"block": (16, 16)}, {"block": (4, 4), "block_pooling": "max"}):
        with pytest.raises(ValueError, match="mask structures"):
            GradualPruner(TinyLM(), GRADUAL, **other).load_state_dict(state)
