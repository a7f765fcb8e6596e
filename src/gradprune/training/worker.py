"""One torchrun worker of a multi-process training job: ``python -m gradprune.training.worker JOB``.

``JOB`` is the JSON file :func:`gradprune.runner.train_distributed` writes: the run, its settings,
the data files, the output folder, the init checkpoint and the thread count. Every worker trains
the same run; the process group comes from torchrun's environment.
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
        raise SystemExit("usage: python -m gradprune.training.worker <distributed_job.json>")
    job = json.loads(Path(args[0]).read_text())
    settings = job["settings"]
    runner.configure_torch(job["threads"], settings["deterministic"])
    init = job["init_checkpoint"]
    runner.train(settings, Run.from_dict(job["run"]), job["data_files"], Path(job["out_dir"]),
                 Path(init) if init else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
