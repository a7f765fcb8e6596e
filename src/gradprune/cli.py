"""Command line for one training step of the workflow, outside Snakemake.

``python -m gradprune.cli train --config C --run-dir results/<exp>/<model>-<size>/sparsity-<s>/seed-<n>``
continues (or starts) that run; the workflow uses it to launch multi-GPU training under torchrun,
and it is how a run is resumed by hand after preemption.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from gradprune import runner
from gradprune.config import Run, find_run, load_config

_RUN_DIR = re.compile(
    r"results/(?P<experiment>[^/]+)/(?P<model>[a-z0-9_]+)-(?P<size>[^/]+)/"
    r"sparsity-(?P<sparsity>[0-9.]+)/seed-(?P<seed>[0-9]+)/?$"
)


def _fields(path: str) -> dict:
    match = _RUN_DIR.search(path)
    if not match:
        raise SystemExit(
            f"--run-dir {path!r} is not a run folder: expected "
            "results/<experiment>/<model>-<size>/sparsity-<s>/seed-<n>"
        )
    return match.groupdict()


def parse_run_dir(config: dict, path: str):
    g = _fields(path)
    return find_run(config, g["experiment"], g["model"], g["size"], g["sparsity"], int(g["seed"]))


def run_of_dir(path: str, role: str) -> Run:
    g = _fields(path)
    return Run(g["experiment"], g["model"], g["size"], g["sparsity"], int(g["seed"]), role)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradprune.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one run to the end (resuming its checkpoint)")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="preset YAML (validated; the run must be one of its runs)")
    source.add_argument("--job-config", help=argparse.SUPPRESS)  # written by the workflow
    train.add_argument("--role", default=None, help=argparse.SUPPRESS)
    train.add_argument("--run-dir", required=True, help="the run folder (results/...)")
    train.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                       help="prepared data file of the task, e.g. prepared=resources/...")
    train.add_argument("--init", default=None, help="dense checkpoint at t0 to continue from")
    train.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.config:
        config = load_config(args.config)
        run = parse_run_dir(config, args.run_dir)
    else:  # a job's own config, already validated by the workflow (gradprune.workflow.job_config)
        config = yaml.safe_load(Path(args.job_config).read_text())
        run = run_of_dir(args.run_dir, args.role)
    data = dict(item.split("=", 1) for item in args.data)
    runner.configure_torch(args.threads, config["deterministic"])
    runner.train(config, run, data, Path(args.run_dir), Path(args.init) if args.init else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
