"""`gradprune plan`: FLOPs counted by torch's FlopCounterMode (checked against hand counts, with
the grouped-convolution backward corrected), throughputs looked up or estimated as the table
says, and the totals' arithmetic."""

from __future__ import annotations

import pytest
import torch
from tests.workflow_helpers import ROOT, load_preset
from torch import nn

from gradprune import cli, costs
from gradprune.config import validate_config


def _meta(fn):
    with torch.device("meta"):
        return fn()


def test_linear_flops_by_hand():
    layer, x = _meta(lambda: (nn.Linear(3, 4, bias=False), torch.randn(5, 3, requires_grad=True)))
    # forward 5 x 3 x 4 multiply-adds = 60 -> 120 FLOPs; backward: grad of x and of W, 120 each
    assert costs.count_flops(lambda: layer(x).sum().backward()) == 360
    y = _meta(lambda: torch.randn(5, 3))  # no gradient for the input: only the weight's
    assert costs.count_flops(lambda: layer(y).sum().backward()) == 240


def test_lstm_flops_by_hand():
    lstm = _meta(lambda: nn.LSTM(3, 4, bias=False))
    x, h0, c0 = _meta(lambda: (torch.randn(2, 1, 3, requires_grad=True),
                               torch.randn(1, 1, 4, requires_grad=True), torch.randn(1, 1, 4)))
    # per time step: gates 4H x I and 4H x H multiply-adds: 16 x 3 + 16 x 4 = 112 -> 224 FLOPs;
    # two steps 448; the backward computes the gradients of the inputs and of the weights: 2 x 448
    assert costs.count_flops(lambda: lstm(x, (h0, c0))[0].sum().backward()) == 3 * 448


def test_depthwise_convolution_backward_is_counted_at_its_forward():
    conv = _meta(lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False))
    x = _meta(lambda: torch.randn(1, 8, 5, 5, requires_grad=True))
    # forward: 8 channels x 9 taps x 25 positions = 1800 multiply-adds -> 3600 FLOPs
    forward = costs.count_flops(lambda: conv(x))
    assert forward == 3600
    assert costs.count_flops(lambda: conv(x).sum().backward()) == 3 * 3600
    dense = _meta(lambda: nn.Conv2d(8, 8, 3, padding=1, bias=False))
    assert costs.count_flops(lambda: dense(x).sum().backward()) == 3 * 3600 * 8


TABLE = {
    "gpus": {"A": {"peak_tflops": {"fp32": 100.0, "tf32": 100.0, "bf16": 200.0}},
             "B": {"peak_tflops": {"fp32": 50.0, "tf32": 50.0, "bf16": 100.0}}},
    "measured": [{"gpu": "A", "model": "lstm_lm", "size": 650, "precision": "fp32",
                  "examples_per_s": 1000.0, "source": "bench"}],
    "estimates": {"gnmt": {"like": "lstm_lm"}, "inception_v3": {"utilisation": 0.5, "why": "choice"}},
    "loader": {"images_per_s_per_worker": {224: 100, 299: 50}, "source": "bench"},
}


def test_throughput_lookup_and_estimates():
    flops = {("lstm_lm", "650"): 1e9}

    def flops_of(model, size):
        return flops[(model, str(size))]

    got = costs.throughput(TABLE, "A", "lstm_lm", "650", "fp32", 1e9, flops_of)
    assert got.examples_per_s == 1000 and got.source == "measured: bench"
    # a smaller size on the measured GPU kind: the measured size's examples/s (conservative)
    assert costs.throughput(TABLE, "A", "lstm_lm", "200", "fp32", 1e8, flops_of).examples_per_s == 1000
    # ... also on another kind: the 650's estimate there (1% of 50 TFLOP/s at 1e9 FLOPs: 500/s)
    smaller = costs.throughput(TABLE, "B", "lstm_lm", "200", "fp32", 1e8, flops_of)
    assert smaller.examples_per_s == pytest.approx(500) and "conservative" in smaller.source
    # utilisation 1000 x 1e9 / 100e12 = 1%, on B (50 TFLOP/s) for a model of 2e9 FLOPs: 250/s
    other = costs.throughput(TABLE, "B", "gnmt", "1024", "fp32", 2e9, flops_of)
    assert other.examples_per_s == pytest.approx(250) and "1.0% of fp32 peak" in other.source
    # the stated utilisation: 0.5 x 100e12 / 4e10 = 1250
    assert costs.throughput(TABLE, "A", "inception_v3", "1.0", "fp32", 4e10).examples_per_s == 1250
    # bf16 without a bf16 figure: fp32's
    assert costs.throughput(TABLE, "A", "lstm_lm", "650", "bf16", 1e9, flops_of).examples_per_s == 1000
    with pytest.raises(ValueError, match="unknown GPU kind 'C'; the throughput table has A, B"):
        costs.throughput(TABLE, "C", "lstm_lm", "650", "fp32", 1e9)


def test_loader_bounds_an_imagenet_job():
    exp = {"model": "mobilenet_v1", "resources": {"threads": 8, "nodes": 1}}
    fast = costs.Throughput(2000.0, "step")
    bound = costs.loader_bound(fast, TABLE, exp, processes=1)
    assert bound.examples_per_s == 7 * 100 and bound.source.startswith("loader-bound: 7 workers")
    # two processes on the node share its 8 threads: 3 workers each
    assert costs.loader_bound(fast, TABLE, exp, processes=2).examples_per_s == 300
    slow = costs.Throughput(500.0, "step")
    assert costs.loader_bound(slow, TABLE, exp, processes=1) is slow


def test_jobs_of_the_paper_preset_and_the_totals_arithmetic(monkeypatch):
    config = validate_config(load_preset("paper"))
    jobs = costs.training_jobs(config)
    # pretrain: InceptionV3 and MobileNet 1.0, GNMT-1024 of each direction, LSTM 1500 and 650
    assert sum(j.step == "pretrain" for j in jobs) == 6
    # train: 4 InceptionV3 + 8 MobileNet + 2 x 6 GNMT + 13 LSTM runs
    assert sum(j.step == "train" for j in jobs) == 37
    steps = {(j.step, j.run.split("/")[1], j.run.split("/")[2]): j.steps for j in jobs}
    assert steps[("pretrain", "inceptionv3-imagenet", "inception_v3-1.0")] == 400_360
    assert steps[("train", "inceptionv3-imagenet", "inception_v3-1.0")] == 1_000_900 - 400_360
    assert steps[("train", "mobilenet-imagenet", "mobilenet_v1-0.75")] == 3_002_700  # from scratch: 150 epochs of 20,018 steps
    # totals: a fixed cost per step and a fixed throughput make every number a hand product
    monkeypatch.setattr(costs, "step_cost", lambda exp, size, length: costs.StepCost(
        flops=10**12, examples=exp["train"]["batch_size"], unit="x"))
    monkeypatch.setattr(costs, "throughput", lambda *a, **k: costs.Throughput(1000.0, "fixed"))
    monkeypatch.setattr(costs, "loader_bound", lambda rate, *a: rate)
    config["experiments"]["lstm-ptb"]["resources"]["runtime"] = 1  # one minute: flagged
    planned = costs.plan_costs(config, "A", "fp32", table=TABLE)
    one = next(c for c in planned if c.job.step == "pretrain" and c.job.model == "inception_v3")
    assert one.hours == pytest.approx(400_360 * 128 / 1000 / 3600)
    assert one.gpu_hours == one.hours and not one.over_runtime
    tot = costs.totals(planned)
    assert set(tot) == {"Table 1", "Table 2", "Table 3", "Table 4"}
    assert tot["Table 1"]["jobs"] == 5
    assert tot["Table 1"]["gpu_hours"] == pytest.approx(
        (400_360 + 4 * 600_540) * 128 / 1000 / 3600)
    assert tot["Table 1"]["flops"] == pytest.approx((400_360 + 4 * 600_540) * 1e12)
    assert tot["Table 3"]["over_runtime"] == 15 and tot["Table 4"]["over_runtime"] == 0
    text = costs.format_plan(planned, "A", "fp32")
    assert "15 job(s) would run longer than their resources.runtime" in text


def test_gradprune_plan_prints_the_plan(capsys):
    assert cli.main(["plan", "--configfile", str(ROOT / "presets/test.yaml"), "--gpu", "H100"]) == 0
    out = capsys.readouterr().out
    assert "| table | jobs | FLOPs | GPU-hours | jobs over their runtime |" in out
    assert "| all |" in out and "Throughput sources:" in out
