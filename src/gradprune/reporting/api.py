"""Entry points for the thin Snakemake scripts (``scripts/*.py``).

Output names are stable so rules can declare them up front:

``write_experiment_tables(metrics_files, out_dir, experiment, compare_with_paper)``
    ``<experiment>.csv|.md|.tex``        results in the paper's layout (mean ± std over seeds)
    ``<experiment>_comparison.csv|.md|.tex``  paper vs reproduced per (configuration, metric);
                                         without the paper columns when ``compare_with_paper``
                                         is False
    ``<experiment>_headline.csv|.md|.tex``    large-sparse vs nearest-NNZ small-dense
                                         (header only when the experiment lacks one role)
``write_summary_tables(metrics_files, out_dir)``
    ``runs.csv``                         every run, one row each (tidy, metrics as ``metric.<m>``)
    ``headline.csv|.md|.tex``            the headline rows of all experiments
``write_tables``: both of the above for every experiment at once
``write_experiment_figures(metrics_files, out_dir, compare_with_paper)``
    ``<experiment>_metric_vs_nnz.png|.pdf``  with each headline pair joined and its verdict
``write_landing(headline_csv, figure_png, experiment, out_rst)``
    one experiment's section of the report's landing page (``workflow/report/workflow.rst``): its
    verdicts and its metric-vs-NNZ figure inline, as reStructuredText
``write_run_figures(metrics_json, train_log_csv, prune_log_csv, out_dir, eval_csv=None)``
    ``sparsity_schedule.png|.pdf``  Figure 1 redrawn + realized per-tensor sparsity
    ``training_curves.png|.pdf``    loss (and eval metric) vs step, pruning window shaded
    ``lr_sparsity.png|.pdf``        learning rate and sparsity, twin y-axes
    (all three are written for dense runs too, so rule outputs never depend on the role)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from gradprune.reporting.collect import collect_runs, pruning_params
from gradprune.reporting.figures import (
    plot_lr_and_sparsity,
    plot_metric_vs_nnz,
    plot_sparsity_schedule,
    plot_training_curves,
    save_figure,
    schedule_from_params,
)
from gradprune.reporting.formatting import fmt_size, write_table
from gradprune.reporting.landing import experiment_section
from gradprune.reporting.pairing import DEFAULT_NNZ_TOLERANCE, headline_display, headline_pairs
from gradprune.reporting.reference import comparison_table, load_reference
from gradprune.reporting.tables import experiment_table

PathLike = str | Path


def write_experiment_tables(metrics_files: Iterable[PathLike], out_dir: PathLike, experiment: str,
                            compare_with_paper: bool, reference: PathLike | None = None,
                            tolerance: float | dict[str, float] | None = None,
                            planned: Iterable | None = None,
                            nnz_tolerance: float = DEFAULT_NNZ_TOLERANCE) -> list[Path]:
    """The tables of one experiment (``<experiment>``, ``_comparison``, ``_headline``; see the
    module docstring) from its runs' metrics; returns the written paths.

    ``tolerance``: tie tolerance of the headline (None: the metric's own); ``nnz_tolerance``: the
    config's ``headline.nnz_tolerance`` (:mod:`gradprune.reporting.pairing`). ``planned``: the
    preset's runs (``gradprune.config.plan_runs``); the comparison then tells the paper rows the
    preset plans from those it does not.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(metrics_files)
    exp = experiment
    ref = load_reference(reference) if compare_with_paper else None
    num, disp = experiment_table(runs, exp)
    written = write_table(num, disp, out_dir, exp, caption=f"{exp}: results")
    num, disp = comparison_table(runs, exp, compare_with_paper, reference=ref, planned=planned)
    cap = f"{exp}: reproduced"
    if compare_with_paper:
        counts = num.loc[num["coverage"] != "not in paper", "coverage"].value_counts()
        cap = (f"{exp}: paper vs reproduced ({counts.get('reproduced', 0)} of "
               f"{counts.sum()} paper rows reproduced"
               + "".join(f", {n} {c}" for c, n in counts.items() if c != "reproduced") + ")")
    written += write_table(num, disp, out_dir, f"{exp}_comparison", caption=cap)
    pairs = headline_pairs(runs, exp, tolerance=tolerance, nnz_tolerance=nnz_tolerance)
    written += write_table(pairs, headline_display(pairs), out_dir, f"{exp}_headline",
                           caption=f"{exp}: large-sparse vs small-dense at equal NNZ")
    return written


def write_summary_tables(metrics_files: Iterable[PathLike], out_dir: PathLike,
                         tolerance: float | dict[str, float] | None = None,
                         nnz_tolerance: float = DEFAULT_NNZ_TOLERANCE) -> list[Path]:
    """``runs.csv`` and ``headline.*`` (the headline pairs of every experiment)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(metrics_files)
    written = [out_dir / "runs.csv"]
    runs.to_csv(written[0], index=False)
    pairs = headline_pairs(runs, tolerance=tolerance, nnz_tolerance=nnz_tolerance)
    disp = headline_display(pairs)
    if len(pairs):
        disp.insert(0, "Experiment", pairs["experiment"])
    written += write_table(pairs, disp, out_dir, "headline",
                           caption="Large-sparse vs small-dense at equal NNZ")
    return written


def write_tables(metrics_files: Iterable[PathLike], out_dir: PathLike, compare_with_paper: bool,
                 reference: PathLike | None = None,
                 tolerance: float | dict[str, float] | None = None,
                 planned: Iterable | None = None,
                 nnz_tolerance: float = DEFAULT_NNZ_TOLERANCE) -> list[Path]:
    """Every experiment's tables and the summary tables at once (tools and tests)."""
    files = list(metrics_files)
    written = []
    for exp in dict.fromkeys(collect_runs(files)["experiment"]):
        written += write_experiment_tables(files, out_dir, exp, compare_with_paper, reference,
                                           tolerance, planned, nnz_tolerance)
    return written + write_summary_tables(files, out_dir, tolerance, nnz_tolerance)


def write_experiment_figures(metrics_files: Iterable[PathLike], out_dir: PathLike,
                             compare_with_paper: bool,
                             reference: PathLike | None = None,
                             nnz_tolerance: float = DEFAULT_NNZ_TOLERANCE) -> list[Path]:
    """``<experiment>_metric_vs_nnz.png|.pdf`` per experiment (paper points when comparing; the
    headline pairs joined and labelled with their verdicts)."""
    runs = collect_runs(metrics_files)
    ref = load_reference(reference) if compare_with_paper else None
    written: list[Path] = []
    for exp in dict.fromkeys(runs["experiment"]):
        pairs = headline_pairs(runs, exp, nnz_tolerance=nnz_tolerance)
        fig = plot_metric_vs_nnz(runs, exp, reference=ref, pairs=pairs)
        written += save_figure(fig, out_dir, f"{exp}_metric_vs_nnz")
    return written


def write_landing(headline_csv: PathLike, figure_png: PathLike, experiment: str,
                  out_rst: PathLike) -> Path:
    """The landing page's section of ``experiment`` from its headline table and figure
    (:mod:`gradprune.reporting.landing`)."""
    out = Path(out_rst)
    out.parent.mkdir(parents=True, exist_ok=True)
    section = experiment_section(pd.read_csv(headline_csv), experiment, Path(figure_png).read_bytes())
    out.write_text(section, encoding="utf-8")
    return out


def _read_csv(path: PathLike | None) -> pd.DataFrame | None:
    if path is None:
        return None
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    return pd.read_csv(path)


def write_run_figures(metrics_json: PathLike, train_log_csv: PathLike,
                      prune_log_csv: PathLike | None, out_dir: PathLike,
                      eval_csv: PathLike | None = None) -> list[Path]:
    """The per-run figures ``sparsity_schedule``, ``training_curves``, ``lr_sparsity``
    (PNG and PDF each). ``prune_log_csv``/``eval_csv`` may be None or missing (dense runs)."""
    data = json.loads(Path(metrics_json).read_text())
    train_log = pd.read_csv(train_log_csv)
    prune_log = _read_csv(prune_log_csv)
    eval_log = _read_csv(eval_csv)
    schedule = schedule_from_params(pruning_params(data))
    total = int((data.get("train") or {}).get("steps") or train_log["step"].max() + 1)
    name = (f"{data['experiment']}: {data['model']} {fmt_size(float(data['size']))}, {data['role']}, "
            f"{data['target_sparsity'] * 100:g}% sparse, seed {data['seed']}")
    written = save_figure(plot_sparsity_schedule(schedule, total, prune_log, title=name),
                          out_dir, "sparsity_schedule")
    written += save_figure(
        plot_training_curves(train_log, eval_log, schedule, metric=data.get("task_metric"),
                             title=f"Training loss, {name}", family=data.get("family")),
        out_dir, "training_curves")
    written += save_figure(plot_lr_and_sparsity(train_log, schedule, title=name),
                           out_dir, "lr_sparsity")
    return written
