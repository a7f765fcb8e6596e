"""The `gradprune` command (also `python -m gradprune.cli`): the package's work outside Snakemake.

``python -m gradprune.cli train --config PRESET --run-dir results/<exp>/<model>-<size>/sparsity-<s>/seed-<n>``
continues (or starts) that run from its own checkpoint: how a run is resumed by hand after
preemption. The run folder names the run (a sparsity or seed the preset does not list is trained
like the listed ones). ``gradprune plan`` prints what a preset's training jobs cost before launch
(``gradprune.costs``); ``gradprune compare`` sets your runs beside committed ones
(``gradprune.reporting.compare``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradprune import costs, runner
from gradprune.config import ConfigError, load_config, resolve_run, run_settings
from gradprune.layout import RUN_DIR, parse_run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one run to the end (resuming its checkpoint)")
    train.add_argument("--config", required=True, help="preset YAML (validated)")
    train.add_argument("--run-dir", required=True, help=f"the run folder ({RUN_DIR})")
    train.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                       help="prepared data file of the task, e.g. prepared=resources/...")
    train.add_argument("--init", default=None, help="dense checkpoint at t0 to continue from")
    train.add_argument("--threads", type=int, default=1)
    costs.add_arguments(sub.add_parser("plan", help="print what the preset's training jobs cost "
                                       "(steps, FLOPs, GPU-hours) before launch"))
    compare = sub.add_parser(
        "compare", help="your runs against committed ones: values, settings, machine, verdicts",
        description="Per run found in both folders: both values of the task metric and their "
        "difference, whether the run config hashes match and which machine fields differ; then "
        "whether every verdict of the committed runs holds with your values. Exit status 1 only "
        "on a config mismatch or a changed verdict.")
    compare.add_argument("committed", help="committed results, e.g. docs/results/lstm-ptb-mini")
    compare.add_argument("--yours", default="results",
                         help="your results folder (default: results)")
    compare.add_argument("--nnz-tolerance", type=float, default=None,
                         help="the headline.nnz_tolerance of the pairing (default: the schema's)")
    args = parser.parse_args(argv)
    if args.command == "plan":
        try:
            print(costs.run(args))
        except ConfigError as err:
            parser.error(str(err))
        return 0
    if args.command == "compare":
        from gradprune.reporting.compare import run_compare

        return run_compare(args.yours, args.committed, args.nnz_tolerance)
    fields = parse_run_dir(args.run_dir)
    if fields is None:
        parser.error(f"--run-dir {args.run_dir!r} is not a run folder: expected {RUN_DIR}")
    try:
        config = load_config(args.config)
        run = resolve_run(config, **fields)
    except ConfigError as err:
        parser.error(str(err))
    settings = run_settings(config, run)
    data = dict(item.split("=", 1) for item in args.data)
    runner.configure_torch(args.threads, settings["deterministic"])
    runner.train(settings, run, data, Path(args.run_dir), Path(args.init) if args.init else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
