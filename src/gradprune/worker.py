"""One torchrun worker of a multi-process training job: ``python -m gradprune.worker JOB``.

``JOB`` is the JSON file :func:`gradprune.runner.train_job` / :func:`~gradprune.runner.pretrain_job`
write: the step (``pretrain`` or ``train``), the run, its settings, the data files, the outputs
and the thread count of each worker. Every worker runs the same step; the process group comes
from torchrun's environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gradprune import runner
from gradprune.config import Run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m gradprune.worker <distributed_job.json>")
    job = json.loads(Path(args[0]).read_text())
    settings, run = job["settings"], Run.from_dict(job["run"])
    runner.configure_torch(job["threads"], settings["deterministic"])
    step = job.get("step", "train")
    if step == "pretrain":
        runner.pretrain(settings, run, job["data_files"], Path(job["out_checkpoint"]),
                        Path(job["work_dir"]))
    elif step == "train":
        init = job["init_checkpoint"]
        runner.train(settings, run, job["data_files"], Path(job["out_dir"]),
                     Path(init) if init else None)
    else:
        raise SystemExit(f"{args[0]}: unknown step {step!r}; known: pretrain, train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
