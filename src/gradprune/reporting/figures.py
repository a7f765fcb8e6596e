"""Figures: metric vs NNZ per experiment, the paper's Figure 1 (sparsity schedule) with the
realized per-layer sparsity, training curves, and learning rate vs target sparsity.

Every ``plot_*`` function returns a matplotlib Figure (Agg backend); :func:`save_figure` writes it
as ``<stem>.png`` (150 dpi) and ``<stem>.pdf``. One style (:data:`STYLE`) for all of them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from gradprune.curves import curve_scope, parse_curve_column
from gradprune.reporting.collect import METRIC_PREFIX
from gradprune.reporting.directions import metric_info
from gradprune.reporting.formatting import fmt_size
from gradprune.reporting.pairing import (
    LS_WINS,
    NO_PAIRED_SEEDS,
    NOT_SEPARATED,
    ONE_SEED,
    SD_WINS,
    UNMATCHED,
    verdict_summary,
)
from gradprune.schedule import CubicSchedule

STYLE = {
    "figure.figsize": (7.0, 4.5), "figure.dpi": 100, "savefig.dpi": 150,
    "savefig.bbox": "tight", "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
    "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
    "axes.spines.right": False, "lines.linewidth": 1.8, "lines.markersize": 6,
}
COLORS = {"large-sparse": "#1f6fb4", "small-dense": "#d9541e", "schedule": "black",
          "lr": "#2a9d55", "window": "#f3d36b", "loss": "#444444"}
CONFIDENCE_MARKERS = {"seed": "*", "corroborated": "D", "recollection": "o"}
WINDOW_LABEL = "pruning window"
# How a headline pair's connector is drawn: (colour, line style, short label at its middle).
VERDICT_STYLES = {
    LS_WINS: (COLORS["large-sparse"], "-", "LS wins"),
    SD_WINS: (COLORS["small-dense"], "-", "SD wins"),
    NOT_SEPARATED: ("0.35", "-", "not separated"),
    ONE_SEED: ("0.35", "--", "one seed"),
    NO_PAIRED_SEEDS: ("0.35", "--", "no paired seeds"),
    UNMATCHED: ("0.6", ":", "unmatched NNZ"),
}


def save_figure(fig, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` into ``out_dir`` and close the figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    with plt.rc_context(STYLE):
        for p in paths:
            fig.savefig(p)
    plt.close(fig)
    return paths


def _styled(func):
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return func(*args, **kwargs)
    wrapper.__doc__ = func.__doc__
    wrapper.__name__ = func.__name__
    return wrapper


# --------------------------------------------------------------------------- metric vs NNZ
def _curve(df: pd.DataFrame, col: str) -> pd.DataFrame:
    g = df.groupby(["model", "size", "role", "target_sparsity"], as_index=False).agg(
        nnz=("nnz_millions", "mean"), mean=(col, "mean"), std=(col, "std"), n=("seed", "nunique"))
    return g.sort_values("nnz")


def _draw_pairs(ax, pairs: pd.DataFrame) -> list:
    """Join each headline pair's two points, coloured and labelled by its verdict; legend handles
    of the verdicts drawn."""
    seen = {}
    for _, p in pairs.iterrows():
        color, ls, short = VERDICT_STYLES[p["verdict"]]
        x, y = [p["ls_nnz_millions"], p["sd_nnz_millions"]], [p["ls_mean"], p["sd_mean"]]
        # wide and translucent, so a pair never reads as one of the curves
        ax.plot(x, y, color=color, ls=ls, lw=4, alpha=0.35, zorder=1, solid_capstyle="round")
        ax.annotate(short, (float(np.sqrt(x[0] * x[1])), float(np.mean(y))), fontsize=7,
                    color=color, ha="left", va="center", textcoords="offset points",
                    xytext=(5, 0))
        seen.setdefault(p["verdict"], Line2D([], [], color=color, ls=ls, lw=4, alpha=0.35))
    return [(h, f"pair: {v}") for v, h in seen.items()]


@_styled
def plot_metric_vs_nnz(runs: pd.DataFrame, experiment: str, metric: str | None = None,
                       reference: pd.DataFrame | None = None, pairs: pd.DataFrame | None = None):
    """Metric vs NNZ (millions, log x) for one experiment.

    Large-sparse curve(s): per large model, its dense run (0 %) and its pruned runs, each point
    labelled with its sparsity. Small-dense curve: the small-dense runs plus the dense large
    model(s) (the dense family across sizes). Error bars: std over seeds. ``reference``: the
    paper's rows (already filtered to what should be shown) drawn as hollow markers whose shape
    gives the confidence label. ``pairs``: the experiment's headline pairs
    (:func:`gradprune.reporting.pairing.headline_pairs`), each joined by a line styled by its
    verdict, with the verdict counts under the title.
    """
    df = runs[runs["experiment"] == experiment]
    metric = metric or df["task_metric"].iloc[0]
    info = metric_info(metric)
    col = METRIC_PREFIX + metric
    df = df[df[col].notna()]
    fig, ax = plt.subplots()
    large = df[df["role"] == "large-sparse"][["model", "size"]].drop_duplicates()
    dense_large = df[df["role"] == "dense"]
    styles = ["-", "--", "-.", ":"]
    for i, (_, lm) in enumerate(large.iterrows()):
        sel = df[(df["model"] == lm["model"]) & (df["size"] == lm["size"])
                 & df["role"].isin(["dense", "large-sparse"])]
        c = _curve(sel, col)
        ax.errorbar(c["nnz"], c["mean"], yerr=c["std"].fillna(0), color=COLORS["large-sparse"],
                    ls=styles[i % 4], marker="o", capsize=3,
                    label=f"large-sparse: {lm['model']} {fmt_size(lm['size'])}")
        for _, p in c.iterrows():
            ax.annotate(f"{p['target_sparsity'] * 100:g}%", (p["nnz"], p["mean"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=7,
                        color=COLORS["large-sparse"])
    small = df[df["role"] == "small-dense"]
    if not small.empty or (large.empty and not dense_large.empty):
        c = _curve(pd.concat([small, dense_large]), col)
        ax.errorbar(c["nnz"], c["mean"], yerr=c["std"].fillna(0), color=COLORS["small-dense"],
                    marker="s", capsize=3, label="small-dense (incl. dense large)")
        for _, p in c.iterrows():
            ax.annotate(f"{p['model']} {fmt_size(p['size'])}", (p["nnz"], p["mean"]),
                        textcoords="offset points", xytext=(4, -11), fontsize=7,
                        color=COLORS["small-dense"])
    handles, labels = ax.get_legend_handles_labels()
    has_pairs = pairs is not None and not pairs.empty
    if has_pairs:
        for h, lab in _draw_pairs(ax, pairs):
            handles.append(h)
            labels.append(lab)
    if reference is not None and not reference.empty:
        ref = reference[(reference["experiment"] == experiment)
                        & (reference["metric"] == metric) & reference["value"].notna()]
        for conf, marker in CONFIDENCE_MARKERS.items():
            r = ref[ref["confidence"] == conf]
            if r.empty:
                continue
            colors = [COLORS["large-sparse"] if s > 0 else COLORS["small-dense"]
                      for s in r["sparsity"]]
            size = 90 if marker == "*" else 40
            ax.scatter(r["nnz_millions"], r["value"], marker=marker, s=size,
                       facecolors="none", edgecolors=colors, linewidths=1.3, zorder=3)
            handles.append(Line2D([], [], ls="none", marker=marker, mfc="none", mec="0.3",
                                  ms=9 if marker == "*" else 6))
            labels.append(f"paper, {conf}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("non-zero parameters, NNZ (millions, log scale)")
    ax.set_ylabel(info.axis_label())
    title = f"{experiment}: {info.label} vs non-zero parameters"
    if has_pairs:
        title += f"\n{verdict_summary(pairs)}"
    ax.set_title(title)
    has_paper = any(lab.startswith("paper") for lab in labels)
    leg = ax.legend(handles, labels, loc="best", framealpha=0.9,
                    title="hollow = paper, shape = confidence" if has_paper else None)
    if leg.get_title():
        leg.get_title().set_fontsize(8)
    return fig


# --------------------------------------------------------------------------- schedule
def schedule_from_params(params: dict | None) -> CubicSchedule | None:
    """A :class:`CubicSchedule` from ``provenance.config.pruning``; None for dense runs (whose
    settings carry no mask schedule)."""
    if not params or float(params.get("final_sparsity", 0.0)) <= 0:
        return None
    keys = ("initial_sparsity", "final_sparsity", "begin_step", "frequency", "n_updates")
    kw = {k: params[k] for k in keys}
    for k in ("initial_sparsity", "final_sparsity"):
        kw[k] = float(kw[k])
    for k in ("begin_step", "frequency", "n_updates"):
        kw[k] = int(kw[k])
    if "exponent" in params:
        kw["exponent"] = float(params["exponent"])
    if float(kw["final_sparsity"]) <= 0:
        return None
    return CubicSchedule(**kw)


def schedule_curve(schedule: CubicSchedule, total_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Step-wise (x, s_t) for drawing with ``drawstyle='steps-post'``: value changes only at
    pruning steps; x runs from 0 to ``total_steps``."""
    xs = sorted({0, total_steps, *[s for s in schedule.update_steps() if s <= total_steps]})
    return np.array(xs), np.array([schedule(x) for x in xs])


def _shade_window(ax, schedule: CubicSchedule | None, label=True):
    if schedule is None:
        return
    ax.axvspan(schedule.begin_step, schedule.end_step, color=COLORS["window"], alpha=0.25,
               lw=0, label=WINDOW_LABEL if label else None, zorder=0)


@_styled
def plot_sparsity_schedule(schedule: CubicSchedule | None, total_steps: int,
                           prune_log: pd.DataFrame | None = None, title: str = ""):
    """The paper's Figure 1 redrawn, plus the realized per-layer sparsity.

    Top: s_t over training steps (piecewise constant, changing at t0, t0 + dt, ..., t0 + n dt).
    Bottom (when ``prune_log`` has rows): realized sparsity of each tensor (one light line per
    tensor, coloured by group), the parameter-weighted overall sparsity of the pruned tensors, and
    the target s_t overlaid.
    """
    has_log = prune_log is not None and not prune_log.empty
    fig, axes = plt.subplots(2 if has_log else 1, 1, sharex=True,
                             figsize=(7.0, 6.5 if has_log else 3.8), squeeze=False)
    ax = axes[0, 0]
    if schedule is None:
        ax.plot([0, total_steps], [0, 0], color=COLORS["schedule"], drawstyle="steps-post")
        ax.text(0.5, 0.5, "dense run: no pruning", transform=ax.transAxes, ha="center")
    else:
        x, y = schedule_curve(schedule, total_steps)
        ax.plot(x, y, color=COLORS["schedule"], drawstyle="steps-post", label="target $s_t$")
        upd = [s for s in schedule.update_steps() if s <= total_steps]
        ax.plot(upd, [schedule(s) for s in upd], "o", ms=3, color=COLORS["schedule"],
                label="pruning steps")
        _shade_window(ax, schedule)
        ax.set_title(
            f"Cubic sparsity schedule: $s_i$={schedule.initial_sparsity:g}, "
            f"$s_f$={schedule.final_sparsity:g}, $t_0$={schedule.begin_step}, "
            f"$\\Delta t$={schedule.frequency}, n={schedule.n_updates}")
        ax.legend(loc="lower right")
    ax.set_ylabel("target sparsity")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(-0.02, 1.0)
    if not has_log:
        ax.set_xlabel("training step")
    else:
        ax2 = axes[1, 0]
        groups = list(dict.fromkeys(prune_log["group"]))
        cmap = plt.get_cmap("tab10")
        gcolor = {g: cmap(i % 10) for i, g in enumerate(groups)}
        seen = set()
        for (group, tensor), t in prune_log.groupby(["group", "tensor"], sort=False):
            t = t.sort_values("step")
            lab = None
            if len(groups) <= 10 and group not in seen:
                lab = f"realized: {group}"
                seen.add(group)
            ax2.plot(t["step"], t["realized"], color=gcolor[group], alpha=0.35, lw=0.9,
                     drawstyle="steps-post", label=lab)
        tot = prune_log.groupby("step").agg(nnz=("nnz", "sum"), numel=("numel", "sum"))
        ax2.plot(tot.index, 1 - tot["nnz"] / tot["numel"], color="#1f3b73", lw=2,
                 drawstyle="steps-post", label="realized: all pruned tensors")
        if schedule is not None:
            x, y = schedule_curve(schedule, total_steps)
            ax2.plot(x, y, color=COLORS["schedule"], ls="--", lw=1.5, drawstyle="steps-post",
                     label="target $s_t$")
            _shade_window(ax2, schedule, label=False)
        ax2.set_ylabel("realized sparsity per tensor")
        ax2.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax2.set_ylim(-0.02, 1.0)
        ax2.set_xlabel("training step")
        ax2.set_title(f"Realized sparsity of {prune_log['tensor'].nunique()} pruned tensors")
        ax2.legend(loc="lower right", ncol=2 if len(groups) > 4 else 1)
    ax.set_xlim(0, total_steps)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training curves
@_styled
def plot_training_curves(train_log: pd.DataFrame, eval_log: pd.DataFrame | None = None,
                         schedule: CubicSchedule | None = None, metric: str | None = None,
                         title: str = "", family: str | None = None):
    """Training loss vs step (pruning window shaded); below it, the evaluated metric when
    ``eval_log`` is given: the column of ``metric`` or else its first non-step column, labelled
    with how much of the held-out split it scores (:mod:`gradprune.curves`; ``family`` names the
    unit)."""
    has_eval = eval_log is not None and not eval_log.empty and len(eval_log.columns) > 1
    fig, axes = plt.subplots(2 if has_eval else 1, 1, sharex=True,
                             figsize=(7.0, 6.0 if has_eval else 3.8), squeeze=False)
    ax = axes[0, 0]
    ax.plot(train_log["step"], train_log["loss"], color=COLORS["loss"], lw=1.0, alpha=0.8,
            label="training loss")
    if len(train_log) >= 20:
        smooth = train_log["loss"].rolling(max(5, len(train_log) // 30), center=True,
                                           min_periods=1).mean()
        ax.plot(train_log["step"], smooth, color=COLORS["large-sparse"], lw=1.8,
                label="smoothed")
    _shade_window(ax, schedule)
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title(title or "Training loss")
    ax.legend(loc="upper right")
    if has_eval:
        columns = {c: parse_curve_column(c) for c in eval_log.columns if c != "step"}
        column = next((c for c, (m, _) in columns.items() if m == metric), next(iter(columns)))
        name, n = columns[column]
        try:
            label = metric_info(name).axis_label()
        except KeyError:
            label = name
        scope = curve_scope(family, n)
        ax2 = axes[1, 0]
        ax2.plot(eval_log["step"], eval_log[column], "o-", color=COLORS["small-dense"], ms=3,
                 label=column)
        _shade_window(ax2, schedule, label=False)
        ax2.set_ylabel(f"{label}\n{scope}")
        ax2.set_title(f"Evaluation during training: {name}, {scope}")
        ax2.set_xlabel("training step")
    else:
        ax.set_xlabel("training step")
    fig.tight_layout()
    return fig


@_styled
def plot_lr_and_sparsity(train_log: pd.DataFrame, schedule: CubicSchedule | None = None,
                         title: str = ""):
    """Learning rate (left axis, log scale when it spans more than a decade) and target/realized
    model sparsity (right axis) against step: pruning should end before the learning rate gets
    too small for the network to recover (the paper's warning)."""
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    ax.plot(train_log["step"], train_log["lr"], color=COLORS["lr"], label="learning rate")
    lr = train_log["lr"][train_log["lr"] > 0]
    if len(lr) and lr.max() / lr.min() > 10:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("learning rate", color=COLORS["lr"])
    ax.tick_params(axis="y", colors=COLORS["lr"])
    _shade_window(ax, schedule)
    ax2 = ax.twinx()
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    ax2.plot(train_log["step"], train_log["target_sparsity"], color=COLORS["schedule"],
             drawstyle="steps-post", label="target sparsity")
    if "model_sparsity" in train_log:
        ax2.plot(train_log["step"], train_log["model_sparsity"], color=COLORS["large-sparse"],
                 ls="--", lw=1.2, label="model sparsity (all params)")
    ax2.set_ylabel("sparsity")
    ax2.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax2.set_ylim(-0.02, 1.0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, loc="center right")
    ax.set_title(title or "Learning rate and sparsity vs step")
    fig.tight_layout()
    return fig
