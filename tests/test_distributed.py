"""Multi-process training (DDP on gloo): the same masks on every rank, and the same result as one
process on the combined batch."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from tests.workflow_helpers import validated_experiment
from torch import nn

from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule
from gradprune.tasks.base import Task
from gradprune.training.distributed import DistContext
from gradprune.training.loop import TrainState, train_steps
from gradprune.training.optim import build_optimizer

TRAIN = validated_experiment("test", "mobilenet-fmnist", train={
    "total_steps": 30, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0},
    "lr_schedule": {"name": "constant"}, "log_every": 5, "eval_every": 100, "checkpoint_every": 100,
})["train"]
SCHEDULE = CubicSchedule(0.0, 0.8, begin_step=5, frequency=5, n_updates=3)


class ShardedToyTask(Task):
    """Regression on fixed random data; batch of a step is a pure function of the step."""

    supports_sharding = True

    def __init__(self, dist: DistContext):
        super().__init__({}, {}, "cpu", 0, dist)
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(512, 16, generator=gen)
        self.y = self.x @ torch.randn(16, 4, generator=gen)

    def build_model(self, size):
        return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))

    def train_loss(self, model, step):
        idx = torch.arange(step * 16, step * 16 + 16) % 512
        x, y = self.dist.shard(self.x[idx]), self.dist.shard(self.y[idx])
        return nn.functional.mse_loss(model(x), y)

    def evaluate(self, model, split="test", limit=None):
        return {}


def _train(ctx: DistContext) -> tuple[dict, dict]:
    task = ShardedToyTask(ctx)
    torch.manual_seed(0)
    model = task.build_model(None)
    opt = build_optimizer(model, TRAIN["optimizer"])
    pruner = GradualPruner(model, SCHEDULE, optimizer=opt)
    forward = nn.parallel.DistributedDataParallel(model) if ctx.enabled else None
    state = TrainState(model, opt, pruner, task, forward_model=forward)
    train_steps(state, TRAIN, TRAIN["total_steps"])
    return ({k: v.detach().clone() for k, v in model.state_dict().items()}, pruner.masks())


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        weights, masks = _train(DistContext(rank, world, rank))
        torch.save({"weights": weights, "masks": masks}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single_weights, single_masks = _train(DistContext())
    assert ranks[0]["masks"].keys() == single_masks.keys() and single_masks
    for name, mask in ranks[0]["masks"].items():
        assert torch.equal(mask, ranks[1]["masks"][name]), f"ranks disagree on {name}"
        assert torch.equal(mask, single_masks[name]), f"DDP masks differ from one process: {name}"
    for name, w in ranks[0]["weights"].items():
        assert torch.equal(w, ranks[1]["weights"][name])
        torch.testing.assert_close(w, single_weights[name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_runner_under_torchrun_trains_a_vision_run(tmp_path):
    """The launch path the train rule uses for gpu > 1, here with 2 CPU processes on gloo."""
    from tests.fixtures.data_formats import write_fashion_mnist
    from tests.workflow_helpers import ROOT, load_preset

    from gradprune import runner
    from gradprune.config import resolve_run, run_settings, validate_config
    from gradprune.data.vision import prepare_fashion_mnist

    write_fashion_mnist(tmp_path / "raw", n_train=96, n_test=16)
    prepare_fashion_mnist(tmp_path / "raw", tmp_path / "data.safetensors")
    config = validate_config(load_preset("test"))
    config["experiments"]["mobilenet-fmnist"]["train"].update(total_steps=8, batch_size=16)
    config["experiments"]["mobilenet-fmnist"]["pruning"].update(begin_step=2, frequency=2, n_updates=2)
    run = resolve_run(config, "mobilenet-fmnist", "mobilenet_v1", "1.0", "0.5", 0)
    os.chdir(tmp_path)
    os.environ["PYTHONPATH"] = str(ROOT / "src")
    runner.train_distributed(run_settings(config, run), run,
                             {"prepared": str(tmp_path / "data.safetensors")},
                             tmp_path / run.dir, None, nproc=2)
    summary = json.loads((tmp_path / run.dir / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 8
    tensors = load_file(str(tmp_path / run.dir / "model.safetensors"))
    masks = [k for k in tensors if k.startswith("__mask__.")]
    assert masks and all(float(tensors[k].float().mean()) == pytest.approx(0.5, abs=0.01) for k in masks)
