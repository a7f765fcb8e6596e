"""Each process of a multi-GPU run draws its own dropout masks (issue 22, item 3), and its
generator state is checkpointed; the ranks' pruning masks are checked to agree after every update.

Two gloo processes on CPU stand for two GPUs. Process 0 keeps the run's stream, so a one-process
run draws what it always drew; the other ranks reseed once the model is built."""

from __future__ import annotations

import json
import os
import socket
import traceback
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from tests.test_resume import LM, _words
from torch import nn

from gradprune import runner, seeding
from gradprune.config import Run, run_settings, validate_config
from gradprune.data.lm import prepare_lm_corpus
from gradprune.pruning import GradualPruner
from gradprune.schedule import CubicSchedule
from gradprune.tasks.lm import LanguageModelTask
from gradprune.training.checkpoint import load_checkpoint
from gradprune.training.distributed import DistContext, check_masks_agree, masks_fingerprint

# -- the stream's seeds ------------------------------------------------------------------------------


def test_rank_stream_seeds_are_pinned_and_distinct():
    # worked out by hand from the documented formula: 2**40 + (seed * 1_000_003 + step) * 2**16 + rank
    assert seeding.rank_stream_seed(0, 1) == 1_099_511_627_777
    assert seeding.rank_stream_seed(2, 3, step=5) == 2**40 + (2 * 1_000_003 + 5) * 65_536 + 3
    seeds = {seeding.rank_stream_seed(s, r, t) for s in range(4) for r in range(1, 9)
             for t in (0, 1, 6635, 400_360)}
    assert len(seeds) == 4 * 8 * 4
    # none is a seed of the run's own stream (seed_everything seeds with the run's seed)
    assert min(seeds) > 2**40
    with pytest.raises(ValueError, match="ranks 1..65535"):
        seeding.rank_stream_seed(0, 0)


def test_rank_zero_keeps_the_runs_stream_and_the_others_reseed():
    seeding.seed_everything(3)
    before = torch.get_rng_state()
    seeding.seed_rank(3, 0)
    assert torch.equal(torch.get_rng_state(), before)
    seeding.seed_rank(3, 1)
    one = torch.rand(4)
    torch.manual_seed(seeding.rank_stream_seed(3, 1))
    assert torch.equal(one, torch.rand(4))


# -- the pruning-mask check ------------------------------------------------------------------------


def test_mask_fingerprint_hand_worked():
    # 6 entries, all in the partial row: [count, 1 * count, sum of (column + 1) of kept entries]
    mask = torch.tensor([1, 0, 1, 0, 0, 1], dtype=torch.bool).view(2, 3)
    moved = torch.tensor([0, 1, 1, 0, 0, 1], dtype=torch.bool).view(2, 3)
    fp = masks_fingerprint({"a": mask, "b": moved})
    assert fp.tolist() == [[3, 3, 10], [3, 3, 11]]
    # two full rows of 4096 columns and a tail: kept (row 0, col 0), (row 1, col 10), (tail, col 2)
    big = torch.zeros(8197, dtype=torch.bool)
    big[[0, 4096 + 10, 8192 + 2]] = True
    assert masks_fingerprint({"c": big}).tolist() == [[3, 1 + 2 + 3, 1 + 11 + 3]]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, out: Path, *args):
    """Run ``fn(rank, out, *args)`` on two gloo processes; what each wrote to out/rank<r>.json."""
    mp.spawn(_entry, args=(_free_port(), fn, str(out), args), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def _entry(rank, port, fn, out, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        result = fn(rank, Path(out), *args)
    except Exception as err:  # noqa: BLE001  (reported to the test, which asserts on it)
        result = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
    finally:
        torch.distributed.destroy_process_group()
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


def _check_flipped(rank, out):
    mask = torch.ones(5000, dtype=torch.bool)
    mask[:2500] = False
    if rank == 1:  # the same number kept, one moved
        mask[0], mask[2500] = True, False
    check_masks_agree({"layer.weight": mask, "other.weight": torch.ones(3, dtype=torch.bool)},
                      DistContext(rank, 2, rank), step=40)
    return {"error": None}


def test_ranks_whose_masks_differ_both_stop_with_the_tensor_named(tmp_path):
    results = _spawn(_check_flipped, tmp_path)
    for result in results:
        assert result["error"].startswith("RuntimeError: pruning masks differ across processes "
                                          "after the mask update at step 40: rank 1 disagrees "
                                          "with rank 0 on layer.weight (kept counts [2500]")


class _ToyTask:
    """Regression on fixed data: each rank keeps its half of the step's batch (DDP)."""

    supports_sharding, curve_metric, steps_per_epoch = True, "", 0

    def __init__(self, dist):
        self.dist, self.device, self.seed = dist, torch.device("cpu"), 0
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 8, generator=gen)
        self.y = self.x @ torch.randn(8, 2, generator=gen)

    def train_loss(self, model, step):
        idx = torch.arange(step * 8, step * 8 + 8) % 256
        return nn.functional.mse_loss(model(self.dist.shard(self.x[idx])), self.dist.shard(self.y[idx]))

    def state_dict(self):
        return {}


def _train_with_a_corrupted_rank(rank, out):
    from tests.workflow_helpers import validated_experiment

    from gradprune.training.loop import TrainState, train_steps
    from gradprune.training.optim import build_optimizer

    train = validated_experiment("test", "mobilenet-fmnist", train={
        "total_steps": 12, "optimizer": {"name": "sgd", "lr": 0.1}, "log_every": 4})["train"]
    original = GradualPruner.update_masks

    def update_masks(self, step, target=None):
        original(self, step, target)
        if rank == 1 and step == 6:  # a rank whose masks went astray at the second update
            m = self._groups[0].masks[0].view(-1)
            m[0] = 1 - m[0]

    GradualPruner.update_masks = update_masks
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = build_optimizer(model, train["optimizer"])
    pruner = GradualPruner(model, CubicSchedule(0.0, 0.5, begin_step=3, frequency=3, n_updates=2),
                           optimizer=opt)
    task = _ToyTask(DistContext(rank, 2, rank))
    state = TrainState(model, opt, pruner, task, forward_model=nn.parallel.DistributedDataParallel(model))
    train_steps(state, train, train["total_steps"])
    return {"error": None, "step": state.step}


def test_the_loop_stops_every_rank_when_the_masks_of_an_update_disagree(tmp_path):
    results = _spawn(_train_with_a_corrupted_rank, tmp_path)
    for result in results:
        assert result["error"] is not None, result
        assert "mask update at step 6: rank 1 disagrees with rank 0 on 0.weight" in result["error"]


# -- dropout masks of two processes, and their resume ----------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rank-streams")
    gen = torch.Generator().manual_seed(0)
    (tmp / "raw").mkdir()
    for split, lines in (("train", 300), ("valid", 40), ("test", 40)):
        (tmp / "raw" / f"ptb.{split}.txt").write_text(_words(gen, lines, [f"w{i}" for i in range(40)]))
    prepare_lm_corpus("ptb", tmp / "raw", tmp / "corpus.safetensors")
    return {"prepared": str(tmp / "corpus.safetensors")}


def _lm_config(dropout: float) -> dict:
    exp = json.loads(json.dumps(LM))
    exp["model_args"]["dropout"] = dropout
    exp["train"].update(total_steps=14, checkpoint_every=4, log_every=3)
    return validate_config({"preset": "test", "seeds": [0], "device": "cpu",
                            "experiments": {"lstm-ptb": exp}})


RUN = Run("lstm-ptb", "lstm_lm", "8", "0.0", 0, "small-dense")


def _dropout_mask(rank, out, data):
    state = runner.new_state(run_settings(_lm_config(0.5), RUN), RUN, data, with_pruner=False)
    state.model.train()
    return {"mask": (state.model.drop(torch.ones(256)) == 0).tolist()}


def test_two_processes_draw_their_own_dropout_masks_and_rank_0_draws_one_processes(tmp_path, corpus):
    r0, r1 = (r["mask"] for r in _spawn(_dropout_mask, tmp_path, corpus))
    assert r0 != r1  # before per-rank streams both ranks drew the same mask
    one = runner.new_state(run_settings(_lm_config(0.5), RUN), RUN, corpus, with_pruner=False)
    one.model.train()
    assert (one.model.drop(torch.ones(256)) == 0).tolist() == r0
    # what one process drew before per-rank streams: the run's seed, the model, then dropout
    seeding.seed_everything(0)
    model = LanguageModelTask(_lm_config(0.5)["experiments"]["lstm-ptb"], corpus, "cpu", 0).build_model(8)
    model.train()
    assert (model.drop(torch.ones(256)) == 0).tolist() == r0


class _Preempted(Exception):
    pass


def _train_lm(rank, out, data, stop):
    settings = run_settings(_lm_config(0.3), RUN)
    if stop is not None:
        original = LanguageModelTask.train_loss

        def train_loss(self, model, step):
            if step == stop:
                raise _Preempted(f"preempted at step {step}")
            return original(self, model, step)

        LanguageModelTask.train_loss = train_loss
    try:
        runner.train(settings, RUN, data, out / "run", None)
    except _Preempted:
        return {"preempted": True}
    return {"preempted": False}


@pytest.mark.slow
def test_a_two_process_run_with_dropout_killed_and_resumed_ends_where_an_uninterrupted_one_does(
        tmp_path, corpus):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    assert _spawn(_train_lm, straight, corpus, None)[0] == {"preempted": False}
    assert _spawn(_train_lm, killed, corpus, 6)[0] == {"preempted": True}
    saved = load_checkpoint(killed / "run" / "checkpoint.pt")
    assert saved["step"] == 4 and len(saved["rng_ranks"]) == 2
    assert not torch.equal(saved["rng_ranks"][0]["torch"], saved["rng_ranks"][1]["torch"])
    assert _spawn(_train_lm, killed, corpus, None)[1] == {"preempted": False}
    for name in ("model.safetensors", "train_log.csv", "eval.csv"):
        assert (straight / "run" / name).read_bytes() == (killed / "run" / name).read_bytes(), name
