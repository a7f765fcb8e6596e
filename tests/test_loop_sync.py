"""The training loop reads the loss from the device only at log steps, mask updates and
checkpoints (issue 22, item 4), and still stops a diverged run with the step it diverged at."""

from __future__ import annotations

import pytest
import torch
from tests.workflow_helpers import validated_experiment
from torch import nn

from gradprune.training.distributed import DistContext
from gradprune.training.loop import TrainState, train_steps
from gradprune.training.optim import build_optimizer


class _Task:
    """Regression on fixed data; ``nan_at``: the loss of that step is NaN (a diverged run)."""

    curve_metric, steps_per_epoch, seed = "", 0, 0

    def __init__(self, nan_at: int | None = None):
        self.dist, self.device, self.nan_at = DistContext(), torch.device("cpu"), nan_at
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=gen)
        self.y = self.x @ torch.randn(4, 1, generator=gen)
        self.losses: list[torch.Tensor] = []
        self.calls = 0

    def train_loss(self, model, step):
        self.calls += 1
        idx = torch.arange(step * 4, step * 4 + 4) % 64
        loss = nn.functional.mse_loss(model(self.x[idx]), self.y[idx])
        if step == self.nan_at:
            loss = loss * float("nan")
        self.losses.append(loss.detach().clone())
        return loss

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _state(task):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = build_optimizer(model, validated_experiment(
        "test", "mobilenet-fmnist", train={"optimizer": {"name": "sgd", "lr": 0.05}})["train"]["optimizer"])
    return TrainState(model, opt, None, task)


def _train_cfg(**changes):
    return validated_experiment("test", "mobilenet-fmnist", train={
        "total_steps": 20, "optimizer": {"name": "sgd", "lr": 0.05}, "lr_schedule": {"name": "constant"},
        **changes})["train"]


def test_the_loss_is_read_from_the_device_only_at_log_steps(monkeypatch):
    """20 steps logged every 10: two host reads of the loss (before: one per step)."""
    reads = []
    original = torch.Tensor.__float__
    monkeypatch.setattr(torch.Tensor, "__float__", lambda t: reads.append(1) or original(t))
    task = _Task()
    state = _state(task)
    train_steps(state, _train_cfg(log_every=10), 20)
    monkeypatch.undo()
    assert len(reads) == 2
    # the logged means are the Python float sums of the per-step losses, bit for bit
    values = [float(v) for v in task.losses]
    assert [row["loss"] for row in state.logs.train] == [
        sum(values[:10], 0.0) / 10, sum(values[10:], 0.0) / 10]


@pytest.mark.parametrize("checkpoint_every, stops_by", [(100, 8), (6, 6)])
def test_a_diverged_run_stops_at_the_next_read_naming_the_step(tmp_path, checkpoint_every, stops_by):
    """NaN at step 5; log every 4 steps: the run stops at the log after step index 7 at the
    latest, at the checkpoint after step index 5 when one falls first, and never checkpoints the
    diverged weights."""
    task = _Task(nan_at=5)
    state = _state(task)
    with pytest.raises(FloatingPointError, match=r"^toy: loss is nan at step 5 \(lr 0\.05\); the run "
                                                 r"diverged\. Lower the learning rate"):
        train_steps(state, _train_cfg(log_every=4, checkpoint_every=checkpoint_every), 20,
                    checkpoint_path=tmp_path / "checkpoint.pt", desc="toy")
    assert task.calls == stops_by
    assert not (tmp_path / "checkpoint.pt").exists()
