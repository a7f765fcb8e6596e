"""Dense and sparse execution compute the model's own outputs; the timing design interleaves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprune.footprint.execution import (
    MODES,
    GNMTStep,
    LMStep,
    Product,
    SparseConv2d,
    sparse_vision_model,
)
from gradprune.footprint.latency import inference_calls, measure, summary, time_calls
from gradprune.models import build_model, prune_include
from gradprune.pruning import GradualPruner, select_prune_groups
from gradprune.schedule import CubicSchedule


def _prune(model, name, sparsity=0.8, seed=0):
    """Zero a random ``sparsity`` of every weight the paper prunes; their names."""
    gen = torch.Generator().manual_seed(seed)
    names = [t for g in select_prune_groups(model, prune_include(name)) for t in g.tensors]
    with torch.no_grad():
        for n in names:
            p = model.get_parameter(n)
            p.mul_(torch.rand(p.shape, generator=gen) > sparsity)
    return names


def _close(a, b):
    scale = max(1.0, float(b.abs().max()))
    assert float((a - b).abs().max()) <= 1e-5 * scale


@pytest.mark.parametrize("mode", MODES)
def test_lm_step_is_one_step_of_the_model(mode):
    torch.manual_seed(0)
    model = build_model("lstm_lm", size="small", vocab_size=50, hidden=16).eval()
    encoded = _prune(model, "lstm_lm")
    model.embedding.weight.data[7] = 0  # an all-zero embedding row is gathered too
    tokens = torch.tensor([3, 7, 49])
    hidden = (torch.randn(2, 3, 16), torch.randn(2, 3, 16))
    with torch.no_grad():
        ref, (h, c) = model(tokens[None], hidden)
        out, (oh, oc) = LMStep(model, encoded, mode)(tokens, hidden)
    _close(out, ref[0])
    _close(oh, h)
    _close(oc, c)


@pytest.mark.parametrize("mode", MODES)
def test_gnmt_step_is_the_encoder_plus_one_decoder_step(mode):
    torch.manual_seed(0)
    model = build_model("gnmt", size=16, vocab_size=40, num_layers=3, pad_id=0).eval()
    encoded = _prune(model, "gnmt")
    src = torch.randint(4, 40, (2, 7))
    with torch.no_grad():
        enc = model.encode(src, torch.tensor([7, 7]))
        state, attention = model.start(enc)
        emb = model.decoder.embedding(torch.full((2,), 1))
        top, _, _ = model.decoder.step(emb, state, attention, enc.keys, enc.memory, enc.mask)
        ref = model.decoder.projection(top)
        out = GNMTStep(model, encoded, mode, bos=1)(src)
    _close(out, ref)


def test_sparse_vision_model_gives_the_model_outputs():
    torch.manual_seed(0)
    model = build_model("mobilenet_v1", width=0.25, num_classes=10, in_channels=1,
                        small_input=True).eval()
    encoded = _prune(model, "mobilenet_v1", 0.6)
    sparse = sparse_vision_model(model, encoded)
    assert isinstance(sparse.features[1].pointwise[0], SparseConv2d)
    assert isinstance(model.features[1].pointwise[0], nn.Conv2d)  # the original is untouched
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        # compare the features (the classifier's 0.01-scale init makes the logits tiny)
        _close(sparse.features(x), model.features(x))
        _close(sparse(x), model(x))


@pytest.mark.parametrize("kernel,stride,padding", [((3, 3), 2, 1), ((1, 7), 1, (0, 3)),
                                                   ((1, 1), 2, 0)])
def test_sparse_conv_matches_conv2d(kernel, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, kernel, stride=stride, padding=padding, bias=True)
    with torch.no_grad():
        conv.weight.mul_(torch.rand_like(conv.weight) > 0.5)
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        _close(SparseConv2d(conv)(x), conv(x))
        _close(SparseConv2d(conv)(x[:1]), conv(x[:1]))


def test_sparse_execution_refuses_what_it_cannot_run():
    with pytest.raises(NotImplementedError, match="groups"):
        SparseConv2d(nn.Conv2d(4, 4, 3, groups=4))
    model = nn.Sequential(nn.BatchNorm1d(3))
    with pytest.raises(NotImplementedError, match="only the weights of"):
        sparse_vision_model(model, ["0.weight"])


def test_csr_rows_gather_like_an_embedding():
    w = torch.randn(6, 5) * (torch.rand(6, 5) > 0.5)
    w[2] = 0
    ids = torch.tensor([2, 0, 5, 5])
    assert torch.equal(Product(w, sparse=True).rows(ids), Product(w, sparse=False).rows(ids))


def test_rounds_interleave_calls_in_shuffled_orders():
    seen = []
    calls = {k: (lambda k=k: seen.append(k)) for k in "abc"}
    out = time_calls(calls, rounds=6, min_time_s=0.0, seed=1)
    assert {k: len(v["samples"]) for k, v in out.items()} == {"a": 6, "b": 6, "c": 6}
    assert all(v["inner"] == 1 for v in out.values())
    timed = seen[6:]  # after two warm-up/calibration calls each
    rounds = [tuple(timed[i : i + 3]) for i in range(0, 18, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # every call once per round
    assert len(set(rounds)) > 1  # in changing orders


class FakeClock:
    """A perf_counter that only the calls move: call ``key`` costs the next of its listed seconds
    (warm-up, calibration, then one per round); the timings are then known exactly."""

    def __init__(self, costs: dict[str, list[float]]):
        self.now, self.costs = 0.0, {k: list(v) for k, v in costs.items()}

    def perf_counter(self) -> float:
        return self.now

    def call(self, key: str):
        def run():
            self.now += self.costs[key].pop(0) if len(self.costs[key]) > 1 else self.costs[key][0]
        return run


def _fake_time(monkeypatch, costs):
    from gradprune.footprint import latency

    clock = FakeClock(costs)
    monkeypatch.setattr(latency, "time", clock)
    return clock


def test_calibration_repeats_fast_calls_to_the_minimum_time(monkeypatch):
    # a call of 2^-14 s (61 us) against a minimum sample time of 2^-9 s: 32 calls per sample,
    # and each sample is the time of one call
    clock = _fake_time(monkeypatch, {"fast": [2.0**-14], "slow": [0.5]})
    out = time_calls({k: clock.call(k) for k in ("fast", "slow")}, rounds=3, min_time_s=2.0**-9)
    assert out["fast"]["inner"] == 32 and out["slow"]["inner"] == 1  # a slow call runs once
    assert out["fast"]["samples"] == [2.0**-14] * 3 and out["slow"]["samples"] == [0.5] * 3
    s = summary([3.0, 1.0, 2.0, 10.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 10.0
    # linear interpolation on [1, 2, 3, 10]: positions 0.75 and 2.25
    assert (s["q25"], s["q75"]) == (1.75, 4.75)


def test_speedup_is_dense_over_sparse_per_round_then_the_median(monkeypatch):
    """Per round the dense call takes 4, 8, 2 ms and the sparse one 1, 4, 4 ms: per-round ratios
    dense/sparse 4, 2, 0.5, median 2 (the ratio of the medians would be 4/4 = 1, and
    sparse/dense 0.5: both wrong)."""
    ms = 1e-3
    clock = _fake_time(monkeypatch, {"dense:1": [ms, ms, 4 * ms, 8 * ms, 2 * ms],
                                     "sparse:1": [ms, ms, 1 * ms, 4 * ms, 4 * ms]})
    calls = {("dense", 1): clock.call("dense:1"), ("sparse", 1): clock.call("sparse:1")}
    result = measure(calls, rounds=3, min_time_s=0.0)
    (speedup,) = result["speedup"]
    assert speedup["batch"] == 1
    assert speedup["median"] == pytest.approx(2.0)
    assert (speedup["q25"], speedup["q75"]) == (pytest.approx(1.25), pytest.approx(3.0))
    dense = next(t for t in result["timings"] if t["mode"] == "dense")
    assert dense["median_s"] == pytest.approx(4 * ms) and dense["samples_s"] == pytest.approx(
        [4 * ms, 8 * ms, 2 * ms])
    assert (dense["min_s"], dense["max_s"]) == (pytest.approx(2 * ms), pytest.approx(8 * ms))


def test_inference_calls_cover_modes_and_batches_and_report_speedups():
    torch.manual_seed(0)
    model = build_model("gnmt", size=8, vocab_size=30, num_layers=2, pad_id=0).eval()
    encoded = _prune(model, "gnmt")
    calls = inference_calls("translation", None, model, encoded, [1, 3], source_length=5)
    assert set(calls) == {(m, b) for m in MODES for b in (1, 3)}
    assert calls[("sparse", 3)]().shape == (3, 30)
    _close(calls[("sparse", 1)](), calls[("dense", 1)]())
    result = measure(calls, rounds=3, min_time_s=0.0)
    assert {(t["mode"], t["batch"]) for t in result["timings"]} == set(calls)
    assert all(len(t["samples_s"]) == 3 and t["median_s"] > 0 for t in result["timings"])
    assert [s["batch"] for s in result["speedup"]] == [1, 3]
    with pytest.raises(ValueError, match="unknown family"):
        inference_calls("speech", None, model, encoded, [1], 5)


# -- block-sparse (BSR) execution ------------------------------------------------------------------


@pytest.mark.parametrize("block", [(4, 4), (16, 16), (3, 3)])  # (3, 3): every matrix ragged
def test_bsr_lm_and_gnmt_steps_compute_the_models_outputs(block):
    torch.manual_seed(0)
    model = build_model("lstm_lm", size="small", vocab_size=50, hidden=16).eval()
    encoded = _prune(model, "lstm_lm", sparsity=0.6)
    blocks = {n: block for n in encoded}
    tokens = torch.tensor([3, 7, 49])
    hidden = (torch.randn(2, 3, 16), torch.randn(2, 3, 16))
    with torch.no_grad():
        ref, (h, _) = model(tokens[None], hidden)
        step = LMStep(model, encoded, "bsr", blocks)
        out, (oh, _) = step(tokens, hidden)
    assert step.decoder.bsr and step.decoder.weight.layout == torch.sparse_bsr
    _close(out, ref[0])
    _close(oh, h)
    gnmt = build_model("gnmt", size=16, vocab_size=40, num_layers=3, pad_id=0).eval()
    names = _prune(gnmt, "gnmt", sparsity=0.6)
    src = torch.randint(4, 40, (2, 7))
    with torch.no_grad():
        dense = GNMTStep(gnmt, names, "dense", bos=1)(src)
        bsr = GNMTStep(gnmt, names, "bsr", bos=1, blocks={n: block for n in names})(src)
    _close(bsr, dense)


def test_bsr_product_pads_ragged_matrices_and_gathers_rows():
    torch.manual_seed(1)
    w = torch.randn(10, 7)
    w[4:8] = 0  # an all-zero block row at [4, 4]
    p = Product(w, sparse=True, block=(4, 4))
    assert tuple(p.weight.shape) == (12, 8) and p.weight.layout == torch.sparse_bsr
    x = torch.randn(5, 7)
    _close(p.linear(x), x @ w.t())
    _close(p.left(x.t()), w @ x.t())
    ids = torch.tensor([0, 5, 9, 5])
    assert torch.equal(p.rows(ids), w[ids])
    tall = Product(w, sparse=True, block=(4, 2))  # MKL's BSR takes square blocks only: CSR
    assert not tall.bsr and tall.weight.layout == torch.sparse_csr
    _close(tall.linear(x), x @ w.t())


def test_the_sweep_times_the_experiments_own_structure_at_each_sparsity(monkeypatch):
    """Each sweep point is the run's weights re-pruned by the experiment's rule (its blocks), and
    its speedup is dense over sparse per round, like the trained runs'."""
    from gradprune.footprint import latency as lat

    torch.manual_seed(0)
    model = build_model("lstm_lm", size="small", vocab_size=64, hidden=16).eval()
    exp = {"model": "lstm_lm", "pruning": {"include": None, "exclude": [], "sparsity_overrides": {},
                                           "lstm_grouping": "layer", "block": [4, 4],
                                           "initial_sparsity": 0.0, "begin_step": 0,
                                           "frequency": 1, "n_updates": 1, "exponent": 3.0},
           "train": {"total_steps": 10}}
    encoded = [t for g in select_prune_groups(model, prune_include("lstm_lm")) for t in g.tensors]
    seen = []
    real_step = lat.LMStep

    def spy(m, enc, mode, blocks=None):
        if mode != "dense":
            zeros = sum(int((m.get_parameter(n) == 0).sum()) for n in enc)
            seen.append((mode, round(zeros / sum(m.get_parameter(n).numel() for n in enc), 2)))
            if seen[-1][1] < 0.8:  # below the run's own sparsity its kept weights stay kept
                assert all(torch.all(m.get_parameter(n)[kept[n]] != 0) for n in enc)
        step = real_step(m, enc, mode, blocks)
        if mode == "bsr":
            assert step.decoder.weight.layout == torch.sparse_bsr
        return step

    monkeypatch.setattr(lat, "LMStep", spy)
    cfg = {"latency_batches": [1, 4], "sweep_sparsities": [0.5, 0.9], "latency_rounds": 3,
           "latency_min_time_s": 1e-4}
    trained = GradualPruner(model, CubicSchedule(0.0, 0.8, begin_step=0, frequency=1,
                                                 n_updates=0), include=encoded, block=(4, 4))
    trained.prune_to(0.8)  # a trained 80% run: the sweep must still reach 50% below it
    trained.remove()
    kept = {n: model.get_parameter(n).detach() != 0 for n in encoded}
    out = lat.sweep(exp, model, encoded, {n: (4, 4) for n in encoded}, cfg, seed=0)
    assert seen == [("sparse", 0.5), ("bsr", 0.5), ("sparse", 0.9), ("bsr", 0.9)]
    assert [(p["mode"], p["sparsity"], p["batch"]) for p in out["speedup"]] == [
        (m, s, b) for m in ("sparse", "bsr") for s in (0.5, 0.9) for b in (1, 4)]
    assert all(p["q25"] <= p["median"] <= p["q75"] for p in out["speedup"])
    for n in encoded:  # the run's own model is not touched
        assert torch.equal(model.get_parameter(n).detach() != 0, kept[n])
