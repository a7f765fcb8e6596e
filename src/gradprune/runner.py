"""The three steps of every run, as the workflow calls them.

- ``pretrain``: train the large dense model for steps [0, t0) and save the full training state.
- ``train``: continue from that state to ``total_steps`` while pruning to the run's target
  (target 0 is the dense row), or train a small-dense model from scratch for ``total_steps``;
  export weights (safetensors), the per-step log and the pruning log.
- ``evaluate``: score the exported weights on the test split and write ``metrics.json`` with the
  full provenance.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import torch

from gradprune.config import (
    Run,
    evaluation_config,
    run_config,  # noqa: F401  (re-exported: runner.run_config predates gradprune.config.identity)
    schedule_for,
    size_value,
    speed_defaults,
    training_config,
)
from gradprune.counting import count_nnz, masks_sparsity
from gradprune.curves import curve_table
from gradprune.models import prune_include
from gradprune.provenance import cpu_numerics, now, provenance
from gradprune.pruning import GradualPruner
from gradprune.seeding import seed_everything, seed_rank
from gradprune.tasks import build_task
from gradprune.training.checkpoint import (
    export_weights,
    import_weights,
    load_checkpoint,
    run_identity,
    save_checkpoint,
)
from gradprune.training.distributed import init_from_env, launch, launch_nodes
from gradprune.training.loop import TrainState, resume_if_possible, train_steps
from gradprune.training.optim import build_optimizer, run_lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device: cuda but no CUDA device is visible; use auto or cpu")
    return torch.device(name)


def configure_torch(threads: int, deterministic: bool) -> None:
    torch.set_num_threads(max(1, threads))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def configure_backends(settings: dict, device: torch.device | None = None) -> None:
    """The run's cuDNN settings (``cudnn``) and, on a GPU, the precision of its float32 matmuls
    (``precision.matmul``); absent: the defaults, which are PyTorch's."""
    defaults = speed_defaults()
    cudnn = {**defaults["cudnn"], **settings.get("cudnn", {})}
    torch.backends.cudnn.benchmark = cudnn["benchmark"]
    torch.backends.cudnn.allow_tf32 = cudnn["allow_tf32"]
    matmul = {**defaults["precision"], **settings.get("precision", {})}["matmul"]
    on_gpu = device is not None and torch.device(device).type == "cuda"
    torch.set_float32_matmul_precision(matmul if on_gpu else "highest")


def autocast_of(settings: dict) -> str | None:
    """``precision.autocast`` of the run (None: float32)."""
    return settings.get("precision", {}).get("autocast")


def lr_schedule_of(exp: dict, run: Run):
    """step -> lr of ``run``: ``pruning.continuation_lr`` applies to the runs that continue the
    dense checkpoint from t0 (every sparsity and the dense row), never to small-dense runs."""
    if not run.continues_from_dense:  # small-dense: its settings carry no pruning section
        return run_lr(exp["train"])
    pr = exp["pruning"]
    return run_lr(exp["train"], pr.get("continuation_lr") if pr["from_dense_checkpoint"] else None,
                  t0=pr["begin_step"])


def make_pruner(exp: dict, model, sparsity: float, optimizer=None) -> GradualPruner | None:
    if sparsity == 0.0:
        return None
    pr = exp["pruning"]
    include = pr["include"] or prune_include(exp["model"])
    return GradualPruner(
        model, schedule_for(exp, sparsity), include=include, exclude=pr["exclude"] or None,
        sparsity_overrides=pr["sparsity_overrides"] or None,
        lstm_grouping=pr["lstm_grouping"], optimizer=optimizer,
        block=pr.get("block", (1, 1)), block_pooling=pr.get("block_pooling", "avg"),
        block_map=pr.get("block_map") or None, n_m=pr.get("n_m"),
    )


def new_state(settings: dict, run: Run, data_files: dict, with_pruner: bool) -> TrainState:
    """The model, optimizer, pruner and task of ``run`` as its settings build them (seeded)."""
    exp = settings["experiment"]
    device = resolve_device(settings["device"])
    configure_backends(settings, device)
    ctx, device = init_from_env(device)
    task = build_task(exp, data_files, device, run.seed, dist=ctx)
    if ctx.enabled and not task.supports_sharding:
        raise NotImplementedError(
            f"the {exp['family']} task cannot split a batch over processes; run it as one "
            "process: set resources.gpu to 1 and resources.nodes to 1"
        )
    seed_everything(run.seed)  # the same initial weights on every rank
    model = task.build_model(size_value(run.size)).to(device)
    seed_rank(run.seed, ctx.rank)  # and from here each rank's own dropout masks
    optimizer = build_optimizer(model, exp["train"]["optimizer"])
    pruner = make_pruner(exp, model, float(run.sparsity), optimizer) if with_pruner else None
    forward = None
    if ctx.enabled:
        ids = [device.index] if device.type == "cuda" else None
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return TrainState(model, optimizer, pruner, task, forward_model=forward)


def pretrain(settings: dict, run: Run, data_files: dict, out_checkpoint: Path, work_dir: Path) -> None:
    """Dense training of the large model up to the first pruning step t0."""
    exp = settings["experiment"]
    t0 = exp["pruning"]["begin_step"]
    state = new_state(settings, run, data_files, with_pruner=False)
    ckpt = Path(work_dir) / "checkpoint.pt"
    resume_if_possible(state, ckpt, run_identity(training_config(settings, run), None))
    train_steps(state, exp["train"], t0, ckpt, desc=f"{run.experiment} dense to t0={t0}",
                autocast=autocast_of(settings))
    payload = state.checkpoint_state()  # a collective: every rank's generator state
    if state.is_main:
        save_checkpoint(payload, out_checkpoint)
        _remove_checkpoint(ckpt)
    state.task.dist.barrier()


def train(settings: dict, run: Run, data_files: dict, out_dir: Path, init_checkpoint: Path | None) -> None:
    """Continue (or start) a run to ``total_steps`` and export its weights and logs."""
    exp = settings["experiment"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = now()
    state = new_state(settings, run, data_files, with_pruner=True)
    ckpt = out_dir / "checkpoint.pt"
    identity = run_identity(training_config(settings, run), init_checkpoint)
    if not resume_if_possible(state, ckpt, identity) and init_checkpoint is not None:
        # The dense state at t0: same weights, optimizer state, RNG and logs for every sparsity.
        state.load(load_checkpoint(init_checkpoint, map_location=state.task.device), with_pruner=False)
    total = exp["train"]["total_steps"]
    train_steps(state, exp["train"], total, ckpt, desc=f"{run.experiment} {run.model}-{run.size} "
                f"s={run.sparsity} seed={run.seed}", lr_of=lr_schedule_of(exp, run),
                autocast=autocast_of(settings))
    if not state.is_main:
        state.task.dist.barrier()
        return
    masks = state.pruner.masks() if state.pruner else {}
    export_weights(state.model, masks, out_dir / "model.safetensors",
                   {"run": run.dir, "step": state.step})
    _write_csv(out_dir / "train_log.csv", state.logs.train,
               ["step", "epoch", "loss", "lr", "target_sparsity", "model_sparsity"])
    # the curves score only part of a held-out split: its size goes into the column names
    task = state.task
    n_curve = task.curve_size(exp["train"]["eval_curve_examples"]) if task.curve_metric else 0
    eval_fields, eval_rows = curve_table(state.logs.eval, n_curve)
    _write_csv(out_dir / "eval.csv", eval_rows, eval_fields)
    _write_csv(out_dir / "prune_log.csv", state.pruner.history_rows() if state.pruner else [],
               ["step", "group", "tensor", "target", "realized", "numel", "nnz"])
    summary = {"steps": state.step, "wall_time_s": round(state.logs.wall_time_s, 2),
               "processes": state.task.dist.world_size,
               "started": started, "device": str(state.task.device),
               "resumed_from_dense_t0": init_checkpoint is not None,
               # the training process's kernels and threads (provenance.cpu: the evaluation's)
               "cpu": cpu_numerics()}
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    _remove_checkpoint(ckpt)
    state.task.dist.barrier()


def pretrain_job(settings: dict, run: Run, data_files: dict, out_checkpoint: Path, work_dir: Path,
                 threads: int, gpus: int, nodes: int = 1, slurm_nodes: int | None = None) -> None:
    """What the pretrain rule runs: :func:`pretrain` as :func:`train_job` runs :func:`train`."""
    job = {"step": "pretrain", "out_checkpoint": str(out_checkpoint), "work_dir": str(work_dir)}
    if not _launched(job, settings, run, data_files, Path(work_dir), threads, gpus, nodes,
                     slurm_nodes):
        pretrain(settings, run, data_files, out_checkpoint, work_dir)


def train_job(settings: dict, run: Run, data_files: dict, out_dir: Path,
              init_checkpoint: Path | None, threads: int, gpus: int, nodes: int = 1,
              slurm_nodes: int | None = None) -> None:
    """What the train rule runs: one process; torchrun on this machine when the job has more
    than one GPU; ``srun`` + torchrun, one launcher per node, when it has several nodes
    (``gpus`` per node, ``threads`` per node; ``slurm_nodes``: see
    :func:`~gradprune.training.distributed.launch_nodes`)."""
    job = {"step": "train", "out_dir": str(out_dir),
           "init_checkpoint": str(init_checkpoint) if init_checkpoint else None}
    if not _launched(job, settings, run, data_files, Path(out_dir), threads, gpus, nodes,
                     slurm_nodes):
        train(settings, run, data_files, out_dir, init_checkpoint)


def train_distributed(settings: dict, run: Run, data_files: dict, out_dir: Path,
                      init_checkpoint: Path | None, nproc: int, threads: int = 1) -> None:
    """``train`` on ``nproc`` processes of this machine (one per GPU; gloo on CPU)."""
    train_job(settings, run, data_files, out_dir, init_checkpoint, threads, gpus=nproc)


def _launched(job: dict, settings: dict, run: Run, data_files: dict, folder: Path, threads: int,
              gpus: int, nodes: int, slurm_nodes: int | None) -> bool:
    """Start the workers of a multi-process job (more than one GPU or node) and wait for them;
    False when the job is one process. The job (step, run, settings, files) is handed to the
    workers as ``folder/distributed_job.json`` (:mod:`gradprune.worker`)."""
    per_node = max(1, gpus)
    if per_node * nodes == 1:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    job = {**job, "run": run.to_dict(), "settings": settings,
           "threads": max(1, threads // per_node),  # threads are per node, shared by its workers
           "data_files": {k: str(v) for k, v in data_files.items() if k != "init_checkpoint"}}
    job_path = folder / "distributed_job.json"
    job_path.write_text(json.dumps(job, indent=2))
    if nodes > 1:
        launch_nodes(nodes, per_node, job_path, threads, slurm_nodes)
    else:
        launch(per_node, job_path)
    return True


def evaluate(settings: dict, run: Run, data_files: dict, weights: Path, train_summary: Path,
             out_metrics: Path, preset: dict | None = None) -> dict:
    """Score the exported weights on the test split and write metrics.json with provenance.

    ``preset``: ``{"preset": name, "sources": [...]}`` of the config the workflow ran (recorded,
    not part of the run's identity)."""
    exp = settings["experiment"]
    started = now()
    state = new_state(settings, run, data_files, with_pruner=False)
    weights_state, masks = import_weights(weights)
    state.model.load_state_dict(weights_state)
    metrics = state.task.evaluate(state.model, split="test")
    nnz = count_nnz(state.model, masks)
    cfg = evaluation_config(settings, run)
    result = {
        "experiment": run.experiment,
        "family": exp["family"],
        "dataset": exp["dataset"],
        "task_metric": state.task.metric_names[0],
        "model": run.model,
        "size": size_value(run.size),
        "role": run.role,
        "target_sparsity": float(run.sparsity),
        "seed": run.seed,
        "in_preset": run.in_preset,
        "nnz": nnz.total,
        "params": nnz.dense_total,
        "model_sparsity": nnz.sparsity,
        "pruned_tensors_sparsity": masks_sparsity(masks),
        "metrics": metrics,
        "train": json.loads(Path(train_summary).read_text()),
        "provenance": provenance(cfg, state.task.device, started, preset),
    }
    result["train"]["total_steps"] = exp["train"]["total_steps"]
    # How the metrics were computed (translation: sacrebleu signatures, decoding, extra test sets).
    scoring = getattr(state.task, "last_eval_info", None)
    if scoring:
        result["scoring"] = scoring
    Path(out_metrics).write_text(json.dumps(result, indent=2, default=str))
    return result


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _remove_checkpoint(ckpt: Path) -> None:
    ckpt.unlink(missing_ok=True)
    ckpt.with_name(ckpt.name + ".sha256").unlink(missing_ok=True)
