"""Where every file of the workflow lives: the one home of the path patterns.

The patterns use Snakemake's wildcard syntax (``{experiment}``...). The rules import them, ``Run``
formats them, and :func:`parse_run_dir` reads a run folder back with a regular expression built
from the same pattern and the same wildcard constraints the workflow uses.
"""

from __future__ import annotations

import re

RESULTS = "results"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
RAW = "resources/data"  # downloaded files, checksum-verified: RAW/<dataset>/<file>
PREPARED = "resources/prepared"  # decoded datasets: PREPARED/<dataset>/<file>

# What each wildcard of a run folder may hold (also the workflow's wildcard_constraints).
WILDCARDS = {
    "experiment": r"[a-z0-9][a-z0-9-]*",
    "model": r"[a-z0-9_]+",
    "size": r"[0-9A-Za-z.]+",
    "sparsity": r"[0-9]+\.[0-9]+",
    "seed": r"[0-9]+",
}

_RUN = "{experiment}/{model}-{size}"
_ONE_RUN = f"{_RUN}/sparsity-{{sparsity}}/seed-{{seed}}"
RUN_DIR = f"{RESULTS}/{_ONE_RUN}"
# The large model trained densely up to the first pruning step t0, shared by all its sparsities.
PRETRAIN_DIR = f"{RESULTS}/{_RUN}/pretrain/seed-{{seed}}"
# The files a train job writes in a run folder, by the train rule's output names.
TRAINING_OUTPUTS = {
    "weights": "model.safetensors",
    "train_log": "train_log.csv",
    "eval_log": "eval.csv",
    "prune_log": "prune_log.csv",
    "summary": "train_summary.json",
}
RUN_FIGURE_DIR = f"{FIGURES}/{_ONE_RUN}"
# The log and benchmark of the job that draws one run's figures (rule run_figures).
RUN_FIGURES_LOG = f"logs/report/{_ONE_RUN}.log"
RUN_FIGURES_BENCHMARK = f"logs/benchmarks/report/{_ONE_RUN}.tsv"


def _regex(pattern: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", pattern)
    out = []
    for i, part in enumerate(parts):
        out.append(f"(?P<{part}>{WILDCARDS[part]})" if i % 2 else re.escape(part))
    return re.compile("".join(out) + "/?$")


_RUN_DIR_RE = _regex(RUN_DIR)


def parse_run_dir(path: str) -> dict[str, str] | None:
    """The wildcards of a run folder (``results/<exp>/<model>-<size>/sparsity-<s>/seed-<n>``), or
    None when ``path`` does not end in one."""
    match = _RUN_DIR_RE.search(str(path))
    return match.groupdict() if match else None
