"""GPU speed options on CPU: bf16 autocast keeps masks and pruned zeros exact, and the options
are part of a run's settings (so changing them reruns the runs). CPU autocast runs the LSTM and
the linear layers in bfloat16 like CUDA autocast (the LSTM only where oneDNN has a bf16 LSTM,
AVX-512); the GPU kernels themselves are not tested here."""

from __future__ import annotations

import pytest
import torch
from tests.workflow_helpers import load_preset, validated_case

from gradprune import runner
from gradprune.config import config_hash, resolve_run, run_settings, validate_config
from gradprune.data.lm import prepare_lm_corpus
from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule
from gradprune.training.loop import TrainState, train_steps
from gradprune.training.optim import build_optimizer

TRAIN = {"total_steps": 12, "batch_size": 4, "bptt": 7, "train_subset": 200,
         "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9}, "grad_clip_norm": 5.0,
         "log_every": 4, "eval_every": 1000, "checkpoint_every": 1000}
# family -> (experiment, size, the module whose output dtype shows the autocast)
CASES = {
    "vision": ({"family": "vision", "dataset": "fashion-mnist", "model": "mobilenet_v1",
                "model_args": {"small_input": True}, "train": {**TRAIN, "train_subset": 48}},
               0.25, "classifier.1"),
    "lm": ({"family": "lm", "dataset": "ptb", "model": "lstm_lm", "model_args": {"dropout": 0.0},
            "train": TRAIN}, 16, "decoder"),
}
CASES = {family: (validated_case(exp, size), size, probe)
         for family, (exp, size, probe) in CASES.items()}


def _cpu_runs_bf16_lstm() -> bool:
    """oneDNN's bf16 LSTM needs AVX-512 (CPU autocast runs nn.LSTM through it)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 2)(torch.zeros(1, 1, 2))
        return True
    except RuntimeError:
        return False


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tests.fixtures.data_formats import write_fashion_mnist

    from gradprune.data.vision import prepare_fashion_mnist

    tmp = tmp_path_factory.mktemp("data")
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = (" ".join(f"w{int(i)}" for i in torch.randint(0, 25, (int(k),), generator=gen))
                 for k in torch.randint(3, 12, (n,), generator=gen))
        (tmp / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    prepare_lm_corpus("ptb", tmp, tmp / "corpus.safetensors")
    write_fashion_mnist(tmp / "fmnist", n_train=48, n_test=8)
    prepare_fashion_mnist(tmp / "fmnist", tmp / "fmnist.safetensors")
    return {"lm": {"prepared": tmp / "corpus.safetensors"},
            "vision": {"prepared": tmp / "fmnist.safetensors"}}


def _train(data, family, autocast, check_every_step=False):
    from gradprune.tasks import build_task

    torch.set_num_threads(1)
    exp, size, probe = CASES[family]
    task = build_task(exp, data[family], "cpu", 0)
    torch.manual_seed(0)
    model = task.build_model(size)
    opt = build_optimizer(model, exp["train"]["optimizer"])
    pruner = GradualPruner(model, CubicSchedule(0.0, 0.8, begin_step=2, frequency=2, n_updates=4),
                           optimizer=opt)
    dtypes = set()
    model.get_submodule(probe).register_forward_hook(
        lambda m, i, out: dtypes.add(out.dtype) if m.training else None)
    state = TrainState(model, opt, pruner, task)
    params = dict(model.named_parameters())
    for step in range(TRAIN["total_steps"]):
        train_steps(state, exp["train"], step + 1, autocast=autocast)
        if check_every_step:
            for name, mask in pruner.masks().items():
                assert params[name].dtype == torch.float32, name
                assert not bool(params[name].detach()[~mask].any()), f"step {step}: {name}"
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, pruner, dtypes


@pytest.mark.ci_may_skip("the LM case needs a CPU with AVX-512 (oneDNN's bf16 LSTM)")
@pytest.mark.parametrize("family", list(CASES))
def test_bf16_autocast_keeps_pruned_weights_exactly_zero_after_every_step(data, family):
    if family == "lm" and not _cpu_runs_bf16_lstm():
        pytest.skip("this CPU's oneDNN has no bf16 LSTM (needs AVX-512); CUDA runs it with cuDNN")
    weights, pruner, dtypes = _train(data, family, "bf16", check_every_step=True)
    assert dtypes == {torch.bfloat16}  # the forward ran in bf16
    masks = pruner.masks()
    assert masks and all(m.dtype == torch.bool for m in masks.values())
    schedule = pruner.schedule
    assert schedule(TRAIN["total_steps"] - 1) == pytest.approx(0.8)
    for name, mask in masks.items():  # every pruned weight is an exact zero in the final weights
        assert bool((weights[name][~mask] == 0).all()), name
    fp32, _, fp32_dtypes = _train(data, family, None)
    assert fp32_dtypes == {torch.float32}
    assert any(not torch.equal(weights[k], fp32[k]) for k in weights)  # bf16 changed the run


def test_unknown_autocast_is_refused(data):
    with pytest.raises(ValueError, match="precision.autocast: 'fp8'.*bf16 or null"):
        _train(data, "vision", "fp8")


def test_speed_options_enter_a_run_settings_only_when_set():
    base = validate_config(load_preset("test"))
    run = resolve_run(base, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.5", 0)
    plain = run_settings(base, run)
    assert "precision" not in plain and "cudnn" not in plain  # defaults: identity unchanged
    bf16 = run_settings(validate_config({**base, "precision": {"autocast": "bf16"}}), run)
    assert bf16["precision"] == {"autocast": "bf16", "matmul": "highest"}
    assert runner.autocast_of(bf16) == "bf16"
    bench = run_settings(validate_config({**base, "cudnn": {"benchmark": True}}), run)
    assert bench["cudnn"] == {"benchmark": True, "allow_tf32": True}
    # the config hash of provenance and checkpoints follows
    assert len({config_hash(runner.run_config(s, run)) for s in (plain, bf16, bench)}) == 3


def test_cudnn_settings_are_applied():
    saved = torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    try:
        runner.configure_backends({"cudnn": {"benchmark": True, "allow_tf32": False}})
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == (True, False)
        runner.configure_backends({})
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == (False, True)
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = saved
