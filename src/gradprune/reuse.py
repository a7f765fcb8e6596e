"""A train job whose run has a twin (``gradprune.config.twins``) copies the twin's training outputs.

The copy is the twin's training, labelled as this run's: the weights keep their tensors and masks
byte for byte, their metadata names this run and the run it was trained as
(``same_training_as``), and ``train_summary.json`` says the same, so ``metrics.json`` (which
embeds the summary) records where the weights come from. Logs are copied unchanged. Every file is
written atomically: a job killed midway leaves the previous file or none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open
from safetensors.torch import load_file, save

from gradprune.atomic import write_bytes
from gradprune.layout import TRAINING_OUTPUTS

if TYPE_CHECKING:
    from gradprune.config import Run


def twin_files(inputs: dict) -> dict[str, str] | None:
    """The twin's files among a train job's inputs (by output name), or None when it trains."""
    files = {name: inputs.get(f"twin_{name}") for name in TRAINING_OUTPUTS}
    if not any(files.values()):
        return None
    missing = [f"twin_{name}" for name, path in files.items() if not path]
    if missing:
        raise ValueError(f"a train job copying a twin run needs all of its outputs; missing "
                         f"inputs {', '.join(missing)}")
    return files


def reuse_training(twin: dict[str, str], outputs: dict[str, str], run_dir: str) -> None:
    """Write the train outputs ``outputs`` (by output name) of the run in ``run_dir`` as copies
    of its twin's files ``twin`` (by output name)."""
    twin_dir = str(Path(twin["weights"]).parent)
    with safe_open(twin["weights"], framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    meta.update(run=run_dir, same_training_as=twin_dir)
    tensors = load_file(twin["weights"])
    write_bytes(outputs["weights"], save(tensors, metadata={"meta": json.dumps(meta, sort_keys=True)}))
    summary = json.loads(Path(twin["summary"]).read_text())
    summary["same_training_as"] = twin_dir
    write_bytes(outputs["summary"], json.dumps(summary, indent=2).encode())
    for name in ("train_log", "eval_log", "prune_log"):
        write_bytes(outputs[name], Path(twin[name]).read_bytes())


def train_or_copy_twin(settings: dict, run: Run, inputs: dict, outputs: dict, threads: int,
                       gpus: int, nodes: int = 1, slurm_nodes: int | None = None) -> None:
    """What a train job does: copy its twin's training when its inputs name one (twin_files),
    else train the run (gradprune.runner.train_job) into the folder of ``outputs["weights"]``,
    from ``inputs["init_checkpoint"]`` when the job has one (a pruned run continues from t0)."""
    run_dir = Path(outputs["weights"]).parent
    twin = twin_files(inputs)
    if twin is not None:
        reuse_training(twin, outputs, str(run_dir))
        return
    from gradprune import runner  # imported here: the copy needs none of the training stack

    init = inputs.get("init_checkpoint")
    runner.train_job(settings, run, inputs, run_dir, Path(init) if init else None, threads, gpus,
                     nodes, slurm_nodes)
