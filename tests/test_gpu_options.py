"""GPU speed options of issue 22, item 4: the precision of float32 matmuls (TF32 is opt-in, the
paper's float32 the default) and the optimizers' fused kernels on a GPU, CPU runs untouched."""

from __future__ import annotations

import pytest
import torch
from tests.workflow_helpers import load_preset

from gradprune import runner
from gradprune.config import (
    ConfigError,
    resolve_run,
    run_settings,
    training_config,
    validate_config,
)
from gradprune.training.optim import build_optimizer


def _run_settings(**top):
    config = validate_config({**load_preset("test"), **top})
    run = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.5", 0)
    return run_settings(config, run), run


def test_tf32_matmuls_are_opt_in_and_part_of_the_run():
    plain, run = _run_settings()
    assert "precision" not in plain  # the default (float32) leaves the identity as it was
    tf32, _ = _run_settings(precision={"matmul": "high"})
    assert tf32["precision"] == {"autocast": None, "matmul": "high"}
    assert training_config(plain, run) != training_config(tf32, run)
    with pytest.raises(ConfigError, match="precision.matmul: 'tf32' is not one of"):
        _run_settings(precision={"matmul": "tf32"})


@pytest.fixture
def matmul_precision():
    saved = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(saved)


def test_matmul_precision_is_set_on_a_gpu_only(matmul_precision):
    tf32, _ = _run_settings(precision={"matmul": "high"})
    runner.configure_backends(tf32, torch.device("cuda", 0))  # sets a flag: no device needed
    assert torch.get_float32_matmul_precision() == "high"
    runner.configure_backends(tf32, torch.device("cpu"))  # CPU runs keep float32
    assert torch.get_float32_matmul_precision() == "highest"
    runner.configure_backends(tf32, torch.device("cuda", 0))
    runner.configure_backends(_run_settings()[0], torch.device("cuda", 0))  # the default
    assert torch.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_cpu_optimizers_keep_the_default_path(name):
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, {"name": name, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
                                  "nesterov": False, "eps": 1e-8})
    assert not opt.defaults.get("fused") and opt.defaults.get("foreach") is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name, kind", [("sgd", "fused"), ("adam", "fused"), ("adamw", "fused"),
                                        ("rmsprop", "foreach")])
def test_cuda_optimizers_use_fused_or_foreach_kernels(name, kind):
    model = torch.nn.Linear(3, 2).cuda()
    opt = build_optimizer(model, {"name": name, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
                                  "nesterov": False, "eps": 1e-8})
    assert opt.defaults[kind] is True
    model(torch.ones(1, 3, device="cuda")).sum().backward()
    opt.step()
