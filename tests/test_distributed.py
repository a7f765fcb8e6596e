"""Multi-process training (DDP on gloo): the same masks on every rank, and the same result as one
process on the combined batch: a toy task, and the real LM and translation tasks (each rank keeps
its streams / sentence pairs of the global batch)."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from tests.workflow_helpers import validated_case, validated_experiment
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


# -- the real LM and translation tasks ------------------------------------------------------------
# Dropout 0: each rank draws its own dropout masks, which no single process reproduces.
FAMILY_TRAIN = {"total_steps": 10, "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9},
                "grad_clip_norm": 5.0, "log_every": 5, "eval_every": 1000, "checkpoint_every": 1000}
FAMILY_SCHEDULE = CubicSchedule(0.0, 0.75, begin_step=2, frequency=2, n_updates=3)
# name -> (experiment, model size)
FAMILY_CASES = {
    # 7 windows per epoch: the 10 steps carry the hidden state across windows and reset it once
    "lm": ({"family": "lm", "dataset": "ptb", "model": "lstm_lm",
            "model_args": {"dropout": 0.0, "num_layers": 2},
            "train": {**FAMILY_TRAIN, "batch_size": 4, "bptt": 7, "train_subset": 200}}, 12),
    **{f"translation-{form}": (
        {"family": "translation", "dataset": "wmt16", "model": "gnmt",
         "model_args": {"num_layers": 2, "dropout": 0.0},
         "train": {**FAMILY_TRAIN, "batch_size": 6, "eval_batch_size": 8},
         "translation": {"source_lang": "en", "target_lang": "de", "test_sets": ["newstest2015"],
                         "loss": form, "curve_examples": 0}}, 8)
       for form in ("sum_per_sentence", "mean_per_token")},
}
FAMILY_CASES = {name: (validated_case(exp, size), size) for name, (exp, size) in FAMILY_CASES.items()}


def _write_ptb(root):
    gen = torch.Generator().manual_seed(0)
    root.mkdir(parents=True)
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = (" ".join(f"w{int(i)}" for i in torch.randint(0, 25, (int(k),), generator=gen))
                 for k in torch.randint(3, 12, (n,), generator=gen))
        (root / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")


def _write_wmt16(root):
    """The WMT16 archives with sentence pairs of varied lengths (so the ranks' shares of a batch
    hold different numbers of target tokens) and newstest files of the real sizes."""
    from tests.fixtures.data_formats import sgm_text, tgz_bytes

    from gradprune.data.parallel_text import NEWSTEST_SIZES, WMT16_CORPORA, WMT_DEV_ARCHIVE

    gen = torch.Generator().manual_seed(1)
    words = {"en": ["the", "a", "cat", "dog", "sees", "runs", "house", "big", "small", "red"],
             "de": ["der", "katze", "hund", "sieht", "rennt", "haus", "gross", "klein", "rot"]}

    def sentence(lang):
        n = int(torch.randint(1, 14, (1,), generator=gen))
        return " ".join(words[lang][int(i)] for i in torch.randint(0, len(words[lang]), (n,),
                                                                   generator=gen))

    root.mkdir(parents=True)
    for archive, member in WMT16_CORPORA.values():
        sides = {lang: [sentence(lang) for _ in range(12)] for lang in ("en", "de")}
        (root / archive).write_bytes(tgz_bytes({
            member.format(lang=lang): ("\n".join(lines) + "\n").encode()
            for lang, lines in sides.items()}))
    n13, n15 = NEWSTEST_SIZES["newstest2013"], NEWSTEST_SIZES["newstest2015"]
    (root / WMT_DEV_ARCHIVE).write_bytes(tgz_bytes({
        "dev/newstest2013.en": b"the cat\n" * n13,
        "dev/newstest2013.de": b"die katze\n" * n13,
        "dev/newstest2015-deen-src.de.sgm": sgm_text({"d": ["der hund"] * n15}, "newstest2015").encode(),
        "dev/newstest2015-deen-ref.en.sgm": sgm_text({"d": ["the dog"] * n15}, "newstest2015").encode(),
    }))


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    from gradprune.data.lm import prepare_lm_corpus
    from gradprune.data.translation import prepare

    tmp = tmp_path_factory.mktemp("families")
    _write_ptb(tmp / "ptb")
    prepare_lm_corpus("ptb", tmp / "ptb", tmp / "ptb.safetensors")
    _write_wmt16(tmp / "raw" / "wmt16")
    prepare(tmp / "raw", tmp / "wmt16", "wmt16", ["newstest2015"], vocab_size=40)
    translation = {k: str(tmp / "wmt16" / f) for k, f in
                   (("spm", "spm.model"), ("prepared", "data.safetensors"), ("text", "text.json"))}
    return {"lm": {"prepared": str(tmp / "ptb.safetensors")}, "translation": translation}


def _family_task(name, files, ctx):
    from gradprune.tasks import build_task

    exp, _ = FAMILY_CASES[name]
    task = build_task(exp, files[exp["family"]], "cpu", 0)
    task.dist = ctx
    return task


def _train_family(name, files, ctx: DistContext) -> dict:
    """Train case ``name`` as rank ``ctx.rank`` of ``ctx.world_size`` (DDP when > 1)."""
    exp, size = FAMILY_CASES[name]
    task = _family_task(name, files, ctx)
    torch.manual_seed(0)
    model = task.build_model(size)
    opt = build_optimizer(model, exp["train"]["optimizer"])
    pruner = GradualPruner(model, FAMILY_SCHEDULE, optimizer=opt)
    forward = nn.parallel.DistributedDataParallel(model) if ctx.enabled else None
    train_steps(TrainState(model, opt, pruner, task, forward_model=forward), exp["train"],
                exp["train"]["total_steps"])
    out = {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
           "masks": pruner.masks()}
    if name == "lm":
        out["hidden"] = task.state_dict()["hidden"]
    return out


def _family_worker(rank, world, port, files, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ctx = DistContext(rank, world, rank)
        torch.save({name: _train_family(name, files, ctx) for name in FAMILY_CASES},
                   f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def family_ranks(family_files, tmp_path_factory):
    """Every case trained once by 2 gloo processes (one spawn for all: starting them is the cost)."""
    out = tmp_path_factory.mktemp("family-ranks")
    mp.spawn(_family_worker, args=(2, _free_port(), family_files, str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILY_CASES))
def test_lm_and_translation_on_two_processes_match_one_process(name, family_files, family_ranks):
    torch.set_num_threads(1)
    single = _train_family(name, family_files, DistContext())
    r0, r1 = family_ranks[0][name], family_ranks[1][name]
    assert single["masks"] and r0["masks"].keys() == single["masks"].keys()
    for key, mask in r0["masks"].items():
        assert torch.equal(mask, r1["masks"][key]), f"ranks disagree on {key}"
        assert torch.equal(mask, single["masks"][key]), f"DDP masks differ from one process: {key}"
        assert not bool(r0["weights"][key][~mask].any()), f"pruned weights of {key} are not zero"
    for key, w in r0["weights"].items():
        assert torch.equal(w, r1["weights"][key]), key
        torch.testing.assert_close(w, single["weights"][key], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, key=key: f"{key}: {m}")
    if name == "lm":  # every rank carries the hidden state of all the streams
        for h0, h1, h in zip(r0["hidden"], r1["hidden"], single["hidden"]):
            assert torch.equal(h0, h1) and h0.shape == h.shape
            torch.testing.assert_close(h0, h, rtol=1e-4, atol=1e-5)


def test_batch_that_does_not_split_over_the_processes_is_refused(family_files):
    task = _family_task("lm", family_files, DistContext(rank=0, world_size=3))
    with pytest.raises(ValueError, match="global batch of 4 does not split over 3 processes.*"
                                         "multiple of the process count"):
        task.batch(0)
    task = _family_task("translation-mean_per_token", family_files, DistContext(rank=1, world_size=4))
    with pytest.raises(ValueError, match="global batch of 6 does not split over 4 processes"):
        task.batch(0)


LM_PRESET = {
    "preset": "test", "device": "cpu", "seeds": [0],
    "experiments": {"lstm-ptb": {
        "family": "lm", "dataset": "ptb", "model": "lstm_lm",
        "model_args": {"dropout": 0.0, "num_layers": 2},
        "large": {"size": 12, "sparsities": [0.0, 0.5]},
        "train": {**FAMILY_TRAIN, "batch_size": 4, "bptt": 7, "train_subset": 200,
                  "checkpoint_every": 4},
        "pruning": {"begin_step": 4, "frequency": 2, "n_updates": 2},
        "resources": {"threads": 1, "gpu": 2},
    }},
}


@pytest.mark.slow
def test_runner_trains_an_lm_run_under_torchrun_like_one_process(tmp_path, family_files):
    """The path the pretrain and train rules take for `gpu: 2` (torchrun, 2 gloo processes on
    CPU), against the same jobs as one process."""
    from gradprune import runner
    from gradprune.config import resolve_run, run_settings, validate_config
    from gradprune.training.checkpoint import import_weights

    config = validate_config(LM_PRESET)
    dense, pruned = (resolve_run(config, "lstm-ptb", "lstm_lm", "12", s, 0) for s in ("0.0", "0.5"))
    files = family_files["lm"]
    results = {}
    for procs in (2, 1):
        out = tmp_path / f"procs-{procs}"
        t0 = out / "pretrain" / "checkpoint_t0.pt"
        runner.pretrain_job(run_settings(config, dense), dense, files, t0, t0.parent, 1, procs)
        runner.train_job(run_settings(config, pruned), pruned, files, out / "run", t0, 1, procs)
        summary = json.loads((out / "run" / "train_summary.json").read_text())
        assert summary["processes"] == procs and summary["steps"] == 10
        results[procs] = import_weights(out / "run" / "model.safetensors")
    (w2, m2), (w1, m1) = results[2], results[1]
    assert m1 and m1.keys() == m2.keys()
    for key in m1:
        assert torch.equal(m1[key], m2[key]), key
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, key=key: f"{key}: {m}")
    job = json.loads((tmp_path / "procs-2" / "pretrain" / "distributed_job.json").read_text())
    assert job["step"] == "pretrain" and job["threads"] == 1


def test_several_nodes_outside_slurm_are_refused(tmp_path, monkeypatch):
    from gradprune.training.distributed import launch_nodes

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(RuntimeError, match="resources.nodes is 2.*outside SLURM.*profiles/slurm"):
        launch_nodes(2, 1, tmp_path / "distributed_job.json", 1)


def test_launcher_per_node_command():
    from gradprune.training.distributed import srun_command, worker_command

    cmd = srun_command(2, 2, 8, "123") + worker_command("job.json", 4, 2, "node1:29400", "gp-123")
    assert cmd[:7] == ["srun", "--jobid=123", "--nodes=2", "--ntasks=2", "--cpus-per-task=8",
                       "--kill-on-bad-exit=1", "--export=ALL"]
    assert cmd[8:] == ["-m", "torch.distributed.run", "--nnodes=2", "--rdzv-backend=c10d",
                       "--rdzv-endpoint=node1:29400", "--rdzv-id=gp-123", "--nproc-per-node=4",
                       "-m", "gradprune.worker", "job.json"]
