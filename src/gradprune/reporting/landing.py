"""One experiment's section of the landing page of ``snakemake --report``: its verdicts and its
metric-vs-NNZ figure, inline.

Snakemake renders the workflow description (``report:`` in the Snakefile:
``workflow/report/workflow.rst``) as a Jinja2 template whose context holds the config and the
report files of the targets' DAG, not their contents; the verdicts exist only after the runs. So
each experiment's section is a file the workflow writes (``results/report/<experiment>.rst``, rule
``experiment_landing``), and the description includes, with docutils' ``include`` directive, the
sections of the experiments that are part of the report: all of them for the whole report, one
for ``snakemake --report r.html results/report/<experiment>.rst``. The figure is embedded as a
``data:`` URI (the report is one self-contained HTML file; a path would not resolve in it). Figure
and table names are also written as references (```name`_``) to the link targets Snakemake
defines for every report file, so they open the file in the report.
"""

from __future__ import annotations

import base64

import pandas as pd

from gradprune.reporting.directions import metric_info
from gradprune.reporting.formatting import fmt_nnz, fmt_signed, fmt_size, fmt_sparsity, fmt_value
from gradprune.reporting.pairing import (
    LS_WINS,
    SD_WINS,
    UNMATCHED,
    verdict_summary,
    verdict_text,
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


def experiment_section(pairs: pd.DataFrame, experiment: str, figure_png: bytes) -> str:
    """The landing page's section of ``experiment``: its verdict counts, its metric-vs-NNZ figure
    (``figure_png``, inline), links to the figure and headline table, then every pair with its
    numbers and verdict. ``pairs``: the experiment's headline table."""
    p = pairs[pairs["experiment"] == experiment]
    lines = [experiment, "-" * len(experiment), ""]
    if p.empty:
        lines += ["No large-sparse / small-dense pair: the experiment lacks one of the roles.", ""]
    else:
        info = metric_info(p["metric"].iloc[0])
        summary = verdict_summary(p)
        lines += [f"{info.label} ({info.direction}). {summary[0].upper()}{summary[1:]}.", ""]
    # docutils refuses lines over 10,000 characters; it drops the whitespace inside a URI
    data = base64.encodebytes(figure_png).decode("ascii").split()
    lines += [".. image:: data:image/png;base64,", *(f"   {chunk}" for chunk in data),
              f"   :alt: {experiment}: the task metric against NNZ",
              "   :width: 100%", ""]
    lines += [(f"Figure: {_ref(f'{experiment}_metric_vs_nnz.png')}; "
              f"table: {_ref(f'{experiment}_headline.csv')}."), ""]
    if not p.empty:
        lines += [_pair_line(r) for _, r in p.iterrows()] + [""]
    return "\n".join(lines) + "\n"
