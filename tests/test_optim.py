"""Learning-rate schedules, and pruning.continuation_lr: the lr of the runs that continue the
dense checkpoint (MobileNet of the paper: the dense schedule again, 10x smaller)."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from tests.fixtures.data_formats import write_fashion_mnist
from tests.workflow_helpers import load_preset, validated_experiment

from gradprune import runner
from gradprune.config import ConfigError, resolve_run, run_settings, validate_config
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.training.optim import lr_at, run_lr


def _train(**train) -> dict:
    """The test preset's train section with ``train`` merged in, validated (defaults filled)."""
    return validated_experiment("test", "mobilenet-fmnist", train=train)["train"]


STEP = _train(total_steps=100, optimizer={"name": "sgd", "lr": 1.0},
              lr_schedule={"name": "step", "decay": 0.5, "decay_start": 10, "decay_every": 10})


def test_without_continuation_the_schedule_is_lr_at():
    lr = run_lr(STEP)
    assert [lr(s) for s in range(100)] == [lr_at(s, 1.0, STEP["lr_schedule"], 100) for s in range(100)]
    assert lr(9) == 1.0 and lr(10) == 0.5 and lr(99) == 0.5**9


def test_continuation_scales_the_initial_rate():
    lr = run_lr(STEP, {"scale": 0.1, "restart": False}, t0=40)
    assert lr(40) == pytest.approx(0.1 * 0.5**4) and lr(99) == pytest.approx(0.1 * 0.5**9)


def test_continuation_restarts_the_schedule_at_t0():
    lr = run_lr(STEP, {"scale": 0.1, "restart": True}, t0=40)
    assert lr(40) == pytest.approx(0.1) and lr(49) == pytest.approx(0.1)
    assert lr(50) == pytest.approx(0.05) and lr(99) == pytest.approx(0.1 * 0.5**5)
    # a cosine schedule restarted at t0 spans the remaining steps: half way at t0 + 30 of 60
    cos = _train(total_steps=100, optimizer={"name": "sgd", "lr": 1.0}, lr_schedule={"name": "cosine"})
    lr = run_lr(cos, {"scale": 0.1, "restart": True}, t0=40)
    assert lr(40) == pytest.approx(0.1) and lr(70) == pytest.approx(0.05)
    assert lr(100) == pytest.approx(0.0, abs=1e-12)


# Warm-up: step t < w runs at base * (t + 1) / w, then the schedule (cosine over the steps after
# the warm-up; step decays count from step 0). Hand-worked values, base 1.0, warm-up 4, 12 steps.
WARM_COSINE = _train(total_steps=12, optimizer={"name": "sgd", "lr": 1.0},
                     lr_schedule={"name": "cosine", "warmup_steps": 4})


def test_warmup_ramps_linearly_then_the_cosine_spans_the_remaining_steps():
    lr = run_lr(WARM_COSINE)
    assert [lr(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]  # step 4: cosine at 0
    assert lr(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))
    assert lr(8) == pytest.approx(0.5)  # half way through the 8 cosine steps
    assert lr(12) == pytest.approx(0.0, abs=1e-15)
    step = _train(total_steps=40, optimizer={"name": "sgd", "lr": 1.0},
                  lr_schedule={"name": "step", "warmup_steps": 5, "decay": 0.5,
                               "decay_start": 10, "decay_every": 10})["lr_schedule"]
    assert [lr_at(s, 1.0, step, 40) for s in (0, 4, 5, 9, 10, 20)] == [0.2, 1.0, 1.0, 1.0, 0.5,
                                                                        0.25]
    # restarted at t0, the warm-up counts from t0 (scaled by the continuation)
    restarted = run_lr(WARM_COSINE, {"scale": 0.5, "restart": True}, t0=4)
    assert [restarted(s) for s in (4, 5, 7, 8)] == [0.125, 0.25, 0.5, 0.5]


def test_exponential_decay_and_the_min_lr_floor():
    exp = _train(total_steps=100, optimizer={"name": "sgd", "lr": 1.0},
                 lr_schedule={"name": "exponential", "decay": 0.25, "decay_start": 10,
                              "decay_every": 4, "min_lr": 0.01})["lr_schedule"]
    # continuous: 0.25^((t - 10) / 4); half an interval is a factor 0.5; floored at 0.01
    assert [lr_at(t, 1.0, exp, 100) for t in (9, 10, 12, 14, 18)] == [1.0, 1.0, 0.5, 0.25, 0.0625]
    assert lr_at(99, 1.0, exp, 100) == 0.01
    step = dict(exp, name="step")  # whole intervals: 0.25 from step 10, 0.0625 from 14, ...
    assert [lr_at(t, 1.0, step, 100) for t in (9, 10, 13, 14, 18, 99)] == [
        1.0, 0.25, 0.25, 0.0625, 0.015625, 0.01]
    cos = dict(exp, name="cosine")  # cosine from 1.0 down to min_lr
    assert lr_at(50, 1.0, cos, 100) == pytest.approx(0.505) and lr_at(100, 1.0, cos, 100) == 0.01


def warm_cosine(t: int, base: float, warmup: int, total: int) -> float:
    """The test's own statement of a warm-up + cosine schedule (min_lr 0)."""
    if t < warmup:
        return base * (t + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (t - warmup) / (total - warmup))))


@pytest.mark.parametrize("experiment", ["mobilenet-fmnist", "gnmt-multi30k"])
def test_the_minis_warmup_recipes(experiment):
    """The mini's cosine schedules with warm-up (vision and translation), at the first, middle
    and last warm-up steps, the first cosine step, half way and the end."""
    train = validate_config(load_preset("mini"))["experiments"][experiment]["train"]
    sched = train["lr_schedule"]
    assert sched["name"] == "cosine" and sched["min_lr"] == 0 and sched["warmup_steps"] >= 2
    base, warmup, total = train["optimizer"]["lr"], sched["warmup_steps"], train["total_steps"]
    lr = run_lr(train)
    for t in (0, warmup // 2, warmup - 1, warmup, (warmup + total) // 2, total - 1):
        assert lr(t) == pytest.approx(warm_cosine(t, base, warmup, total), rel=1e-12, abs=1e-15), t
    assert lr(0) == base / warmup and lr(warmup - 1) == base  # the ramp's ends, exactly


def test_continuation_needs_the_dense_checkpoint():
    config = load_preset("test")
    pr = config["experiments"]["mobilenet-fmnist"]["pruning"]
    pr.update(continuation_lr={"scale": 0.1}, from_dense_checkpoint=False)
    with pytest.raises(ConfigError, match="continuation_lr.*from_dense_checkpoint is false"):
        validate_config(config)


def test_paper_mobilenet_prunes_at_a_tenth_of_the_dense_schedule():
    config = validate_config(load_preset("paper"))
    exp = config["experiments"]["mobilenet-imagenet"]
    t0, total = exp["pruning"]["begin_step"], exp["train"]["total_steps"]
    base = exp["train"]["optimizer"]["lr"]
    sched = exp["train"]["lr_schedule"]

    def lr_of(size, sparsity):  # the schedule a job of that run receives
        run = resolve_run(config, "mobilenet-imagenet", "mobilenet_v1", size, sparsity, 0)
        return runner.lr_schedule_of(run_settings(config, run)["experiment"], run)

    pruned, dense, small = lr_of("1.0", "0.9"), lr_of("1.0", "0.0"), lr_of("0.5", "0.0")
    # the dense model is fully trained before pruning starts: its schedule has decayed by t0
    assert lr_at(t0 - 1, base, sched, total) < base / 10
    for step in (t0, t0 + sched["decay_start"], total - 1):
        expected = lr_at(step - t0, base / 10, sched, total - t0)
        assert pruned(step) == pytest.approx(expected) and dense(step) == pruned(step)
        assert small(step) == lr_at(step, base, sched, total)  # small-dense: the plain schedule


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("continuation")
    write_fashion_mnist(tmp / "raw", n_train=96, n_test=32)
    prepared = tmp / "data.safetensors"
    prepare_fashion_mnist(tmp / "raw", prepared)
    config = load_preset("test")
    exp = config["experiments"]["mobilenet-fmnist"]
    exp["train"].update(total_steps=8, log_every=1, eval_every=100, train_subset=96)
    exp["pruning"].update(begin_step=3, frequency=1, n_updates=2)
    t0 = tmp / "t0.pt"
    config = validate_config(config)
    run = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.5", 0)
    runner.pretrain(run_settings(config, run), run, {"prepared": prepared}, t0, tmp / "pretrain")
    return tmp, config, prepared, t0


def _continue(fmnist, name, continuation):
    tmp, config, prepared, t0 = fmnist
    config = copy.deepcopy(config)
    if continuation is not None:
        config["experiments"]["mobilenet-fmnist"]["pruning"]["continuation_lr"] = continuation
    config = validate_config(config)
    run = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.5", 0)
    runner.train(run_settings(config, run), run, {"prepared": prepared}, tmp / name, t0)
    return pd.read_csv(tmp / name / "train_log.csv"), load_file(tmp / name / "model.safetensors")


def test_continued_runs_follow_the_restarted_scaled_schedule(fmnist):
    torch.set_num_threads(1)
    plain_log, plain = _continue(fmnist, "plain", None)
    identity_log, identity = _continue(fmnist, "identity", {})  # defaults: scale 1, no restart
    assert plain_log["lr"].tolist() == identity_log["lr"].tolist()
    assert all(torch.equal(plain[k], identity[k]) for k in plain)  # bitwise the same run
    log, _ = _continue(fmnist, "restarted", {"scale": 0.1, "restart": True})
    lr = dict(zip(log["step"], log["lr"]))
    # cosine over the 5 steps after t0 = 3, from 0.05 / 10
    assert lr[3] == pytest.approx(0.005)
    assert lr[5] == pytest.approx(0.0025 * (1 + math.cos(math.pi * 2 / 5)))
    assert dict(zip(plain_log["step"], plain_log["lr"]))[3] == pytest.approx(
        0.025 * (1 + math.cos(math.pi * 3 / 8)))


def test_weight_decay_reaches_kernels_only_as_tf_slim():
    """TF-slim decays conv and fully-connected kernels; biases, batch norm and depthwise kernels
    are not regularised. Checked on the update itself: with a zero gradient and no momentum, SGD
    moves a decayed weight by exactly -lr * wd * w and leaves the others untouched."""
    from gradprune.models import build_model
    from gradprune.training.optim import build_optimizer

    torch.manual_seed(0)
    model = build_model("mobilenet_v1", width=0.25, num_classes=10, in_channels=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = build_optimizer(model, {"name": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.1,
                                  "nesterov": False})
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decayed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    # by name, independently of the code: the stem conv, every pointwise kernel, the logits weight
    expected = {"features.0.0.weight", "classifier.1.weight"}
    expected |= {f"features.{i}.pointwise.0.weight" for i in range(1, 14)}
    assert decayed == expected
    for k in expected:
        assert torch.allclose(dict(model.named_parameters())[k], before[k] * (1 - 0.5 * 0.1))


class _LinearLoss:
    """A task whose loss is w . (3, 4): its gradient is (3, 4), of norm 5, at every step."""

    curve_metric = None
    steps_per_epoch = 1
    device = torch.device("cpu")

    def __init__(self):
        from gradprune.training.distributed import DistContext

        self.dist = DistContext()

    def train_loss(self, model, step):
        return model(torch.tensor([[3.0, 4.0]])).sum()


@pytest.mark.parametrize("clip, moved", [(1.0, (0.6, 0.8)), (5.0, (3.0, 4.0)),
                                         (10.0, (3.0, 4.0)), (None, (3.0, 4.0))])
def test_a_training_step_clips_the_gradients_norm_to_grad_clip_norm(clip, moved):
    """One SGD step at lr 1 moves w by -g, g scaled to norm grad_clip_norm when longer (null:
    off)."""
    from gradprune.training.loop import TrainState, train_steps
    from gradprune.training.optim import build_optimizer

    train = _train(total_steps=20, grad_clip_norm=clip, log_every=1, eval_every=1,
                   optimizer={"name": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0},
                   lr_schedule={"name": "constant"})
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    state = TrainState(model, build_optimizer(model, train["optimizer"]), None, _LinearLoss())
    train_steps(state, train, end_step=1)
    assert model.weight.detach()[0].tolist() == pytest.approx([-m for m in moved], rel=1e-6)


@pytest.mark.parametrize("preset, experiment, cls, keys", [
    ("mini", "mobilenet-fmnist", torch.optim.SGD, ("lr", "momentum", "nesterov", "weight_decay")),
    ("mini", "gnmt-multi30k", torch.optim.Adam, ("lr", "eps", "weight_decay")),
    ("paper", "inceptionv3-imagenet", torch.optim.RMSprop, ("lr", "momentum", "eps", "weight_decay")),
])
def test_the_optimizer_carries_the_recipes_hyperparameters(preset, experiment, cls, keys):
    """Every hyperparameter of the recipe reaches the optimizer (RMSProp also TF-slim's decay
    0.9); the recipes use each of them with a value other than torch's default."""
    from gradprune.training.optim import build_optimizer

    cfg = validate_config(load_preset(preset))["experiments"][experiment]["train"]["optimizer"]
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert {k: group[k] for k in keys} == {k: cfg[k] for k in keys}
    if cls is torch.optim.RMSprop:
        assert group["alpha"] == 0.9


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_eps_reaches_every_optimizer_that_has_one(name):
    from gradprune.training.optim import build_optimizer

    cfg = _train(optimizer={"name": name, "lr": 0.1, "eps": 1e-3})["optimizer"]
    assert build_optimizer(torch.nn.Linear(2, 2), cfg).param_groups[0]["eps"] == 1e-3
