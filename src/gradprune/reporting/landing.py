"""The verdicts as reStructuredText for the landing page of ``snakemake --report``.

Snakemake renders the workflow description (``report:`` in the Snakefile:
``workflow/report/workflow.rst``) as a Jinja2 template whose context holds only the config and the
list of report files, not their contents; the verdicts exist only after the runs. So the workflow
writes them here from ``results/tables/headline.csv`` and the description pulls the file in with
docutils' ``include`` directive (a path relative to the working directory, where Snakemake builds
the report). Figure and table names are written as references (```name`_``) to the link targets
Snakemake defines for every report file, so they open the figure in the report.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from gradprune.reporting.directions import metric_info
from gradprune.reporting.formatting import fmt_nnz, fmt_signed, fmt_size, fmt_sparsity, fmt_value
from gradprune.reporting.pairing import (
    DEFAULT_NNZ_TOLERANCE,
    LS_WINS,
    SD_WINS,
    UNMATCHED,
    verdict_summary,
    verdict_text,
)

RULE = (
    "A pair is a large-sparse model and the small-dense model nearest to it in NNZ; it is "
    "*matched* when neither holds more than {tol:g} % more NNZ than the other. Over the seeds both "
    "sides share, the verdict is **large-sparse wins** when it is better on every seed and the "
    "mean gain exceeds the larger of the two models' seed-to-seed standard deviations; "
    "**small-dense wins** symmetrically; otherwise **not separated**. A single seed gives no "
    "verdict (*one seed only*), and unmatched pairs are shown but excluded."
)


def _ref(name: str) -> str:
    """A reference to the link target Snakemake defines for the report file ``name``."""
    return f"`{name}`_"


def _pair_line(p, decimals: int = 2) -> str:
    """One bullet per pair, verdict first (the landing page is a narrow column, not a table)."""
    v = verdict_text(p)
    v = f"**{v}**" if p["verdict"] in (LS_WINS, SD_WINS) else f"*{v}*"
    ls = f"``{p['ls_model']}`` {fmt_size(p['ls_size'])} at {fmt_sparsity(p['ls_sparsity'])}"
    sd = f"``{p['sd_model']}`` {fmt_size(p['sd_size'])}"
    nnz = f"{fmt_nnz(p['ls_nnz_millions'])}M vs {fmt_nnz(p['sd_nnz_millions'])}M NNZ"
    if p["verdict"] == UNMATCHED:
        nnz += f", ratio {p['nnz_ratio']:.2f}"
    values = (f"{fmt_value(p['ls_mean'], p['ls_std'], p['ls_n_seeds'], decimals)} vs "
              f"{fmt_value(p['sd_mean'], p['sd_std'], p['sd_n_seeds'], decimals)}")
    n = int(p["n_paired_seeds"])
    gain = f"gain {fmt_signed(p['difference'], decimals)}"
    if not pd.isna(p["spread"]):
        gain += f", spread {p['spread']:.{decimals}f}"
    gain += f" over {n} paired seed{'s' if n != 1 else ''}"
    return f"- {v}: {ls} vs {sd} ({nnz}): {values}; {gain}."


def verdicts_rst(pairs: pd.DataFrame, experiments: Iterable[str]) -> str:
    """The landing page body: the rule, then per experiment its verdict counts, the links to its
    metric-vs-NNZ figure and headline table, and every pair with its numbers and verdict."""
    tol = float(pairs["nnz_tolerance"].iloc[0]) if len(pairs) else DEFAULT_NNZ_TOLERANCE
    lines = [RULE.format(tol=tol * 100), ""]
    for exp in experiments:
        p = pairs[pairs["experiment"] == exp]
        lines += [exp, "-" * len(exp), ""]
        if p.empty:
            lines += ["No large-sparse / small-dense pair: the experiment lacks one of the roles.",
                      ""]
        else:
            info = metric_info(p["metric"].iloc[0])
            summary = verdict_summary(p)
            lines += [f"{info.label} ({info.direction}). {summary[0].upper()}{summary[1:]}.", ""]
        links = (f"Figure: {_ref(f'{exp}_metric_vs_nnz.png')}; "
                 f"table: {_ref(f'{exp}_headline.csv')}.")
        lines += [links, ""]
        if not p.empty:
            lines += [_pair_line(r) for _, r in p.iterrows()] + [""]
    return "\n".join(lines) + "\n"
