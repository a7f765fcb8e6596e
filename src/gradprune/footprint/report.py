"""Tables and figures of one experiment's footprint, latency and budget frontier.

``write_experiment_report`` writes (``<exp>`` the experiment; names in :mod:`.paths`):

- ``tables/<exp>_footprint.csv``  every run x format: model,size,sparsity,seed,format,bytes,metric,value
- ``tables/<exp>_latency.csv``    every run x execution mode x batch (medians, quartiles, speedup)
- ``tables/<exp>_frontier.csv|md|tex``  every configuration on every axis, Pareto flags
- ``tables/<exp>_budget.csv|md|tex``    best configuration for each small-dense model's budget
- ``tables/<exp>_crossover.csv|md|tex`` sparse speedup per sparsity and the crossover sparsity
- ``figures/<exp>_frontier.png|pdf``    metric against NNZ, bytes per format and latency
- ``figures/<exp>_latency.png|pdf``     sparse speedup against sparsity, per batch
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

from gradprune.footprint import frontier as fr
from gradprune.footprint import paths
from gradprune.reporting.directions import metric_info
from gradprune.reporting.figures import COLORS, STYLE, save_figure
from gradprune.reporting.formatting import fmt_nnz, fmt_size, fmt_sparsity, write_table
from gradprune.reporting.pairing import LS_WINS, NOT_SEPARATED, ONE_SEED, SD_WINS

SHORT = {LS_WINS: "LS wins", SD_WINS: "SD wins", NOT_SEPARATED: "not separated",
         ONE_SEED: "one seed", fr.NO_FIT: "none fits", "n/a": "n/a"}
# Axes of the compact tables and of the figure (the CSVs hold every axis).
DISPLAY_BYTES = ("bitmask", "csr-rel4", "bitmask-int8", "csr-rel4-int8")
FIGURE_BYTES = ("bitmask", "csr-rel4", "csr", "bitmask-int8", "csr-rel4-int8", "csr-int8")
ROLE_MARKERS = {"dense": "D", "large-sparse": "o", "small-dense": "s"}
ROLE_COLORS = {"dense": COLORS["large-sparse"], "large-sparse": COLORS["large-sparse"],
               "small-dense": COLORS["small-dense"]}


def _cost_text(axis: str, cost: float) -> str:
    if math.isnan(cost):
        return "–"
    if axis == "nnz":
        return f"{fmt_nnz(cost / 1e6)}M"
    if axis.startswith("bytes:"):
        return f"{cost / 1e6:.3g} MB"
    return f"{cost:.3g} ms"


def _config_text(model, size, sparsity) -> str:
    return f"{model} {fmt_size(size)} @ {fmt_sparsity(sparsity)}"


def display_axes(configs: pd.DataFrame) -> list[str]:
    latency = sorted((a for a in configs["axis"].unique() if a.startswith("latency:")),
                     key=lambda a: int(a.split(":b")[1]))
    return ["nnz"] + [f"bytes:{f}" for f in DISPLAY_BYTES] + latency


def frontier_display(configs: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """One row per configuration; per axis its cost, starred when Pareto-optimal."""
    axes = [a for a in display_axes(configs) if a in set(configs["axis"])]
    metric = configs["metric"].iloc[0]
    nnz = configs[configs["axis"] == "nnz"].sort_values(["size", "model", "sparsity"],
                                                        ascending=[False, True, True])
    by = configs.set_index(["axis", *fr.CONFIG_KEYS])
    rows = []
    for _, c in nnz.iterrows():
        key = tuple(c[k] for k in fr.CONFIG_KEYS)
        int8 = ("bytes:bitmask-int8", *key)
        row = {"Model": c["model"], "Size": fmt_size(c["size"]), "Role": c["role"],
               "Sparsity": fmt_sparsity(c["sparsity"]), metric: f"{c['value']:.{decimals}f}",
               f"{metric} int8": (f"{by.loc[int8, 'value']:.{decimals}f}" if int8 in by.index
                                  else "–")}
        for axis in axes:
            if (axis, *key) not in by.index:
                row[fr.axis_label(axis)] = "–"
                continue
            hit = by.loc[(axis, *key)]
            row[fr.axis_label(axis)] = (_cost_text(axis, hit["cost"])
                                        + (" *" if hit["pareto"] else ""))
        rows.append(row)
    return pd.DataFrame(rows)


def budget_display(budgets: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """Per small-dense budget (row) and axis (column): the verdict, the best large-sparse model
    that fits and its gain over the small-dense one."""
    if budgets.empty:
        return pd.DataFrame(columns=["Budget of", "Metric"])
    axes = [a for a in display_axes(budgets) if a in set(budgets["axis"])]
    rows = []
    for (model, size), g in budgets.groupby(["budget_model", "budget_size"], sort=False):
        by = g.set_index("axis")
        row = {"Budget of": f"{model} {fmt_size(size)}",
               g["metric"].iloc[0]: f"{by.loc['nnz', 'sd_value']:.{decimals}f}"
               if "nnz" in by.index else "–"}
        for axis in axes:
            r = by.loc[axis]
            text = SHORT.get(r["verdict"], r["verdict"])
            if r["verdict"] != fr.NO_FIT:
                text += (f" ({fmt_sparsity(r['ls_sparsity'])}, "
                         f"{r['difference']:+.{decimals}f})")
            row[fr.axis_label(axis)] = text
        holds = [fr.axis_label(a).removeprefix("bytes, ") for a in axes if a.startswith("bytes:")
                 and by.loc[a, "verdict"] != by.loc["nnz", "verdict"]] if "nnz" in by.index else []
        row["NNZ verdict under byte budgets"] = ("holds" if not holds
                                                 else "changes in " + "; ".join(holds))
        rows.append(row)
    return pd.DataFrame(rows)


def crossover_display(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame(columns=["Model", "Batch", "Crossover sparsity"])
    speed_cols = [c for c in table.columns if c.startswith("speedup@")]
    disp = pd.DataFrame({
        "Model": [f"{m} {fmt_size(s)}" for m, s in zip(table["model"], table["size"])],
        "Batch": table["batch"].astype(int),
    })
    for c in speed_cols:
        disp[f"speedup at {fmt_sparsity(float(c.split('@')[1]))}"] = table[c].map(
            lambda v: "–" if pd.isna(v) else f"{v:.2f}x")
    disp["Crossover sparsity"] = [
        "–" if pd.isna(x) else fmt_sparsity(round(x, 3)) for x in table["crossover_sparsity"]]
    disp["Note"] = table["note"]
    disp["From"] = table["source"]
    return disp


# -- figures -------------------------------------------------------------------------------------


def plot_frontier(configs: pd.DataFrame, experiment: str):
    """Metric against each axis (NNZ, latency per batch, bytes per sparse format); Pareto-optimal
    configurations ringed and joined by the frontier's staircase."""
    metric = configs["metric"].iloc[0]
    info = metric_info(metric)
    latency = [a for a in display_axes(configs) if a.startswith("latency:")]
    axes = ["nnz"] + latency + [f"bytes:{f}" for f in FIGURE_BYTES]
    axes = [a for a in axes if a in set(configs["axis"])]
    ncols = 3
    nrows = math.ceil(len(axes) / ncols)
    with plt.rc_context(STYLE):
        fig, grid = plt.subplots(nrows, ncols, figsize=(13, 3.6 * nrows), squeeze=False)
        for ax, axis in zip(grid.flat, axes):
            g = configs[configs["axis"] == axis]
            for role, sub in g.groupby("role"):
                ax.scatter(sub["cost"], sub["value"], marker=ROLE_MARKERS.get(role, "o"),
                           color=ROLE_COLORS.get(role, "0.4"), label=role, zorder=3)
            for _, p in g.iterrows():
                label = (f"{p['sparsity'] * 100:g}%" if p["role"] != "small-dense"
                         else fmt_size(p["size"]))
                ax.annotate(label, (p["cost"], p["value"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=6, color="0.3")
            front = g[g["pareto"]].sort_values("cost")
            ax.step(front["cost"], front["value"], where="post", color="black", lw=1,
                    alpha=0.6, zorder=2, label="Pareto frontier")
            ax.scatter(front["cost"], front["value"], s=120, facecolors="none",
                       edgecolors="black", linewidths=1.0, zorder=4)
            kind = axis.split(":")[0]
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(
                {"bytes": EngFormatter(unit="B", sep=""), "nnz": EngFormatter(sep="")}.get(
                    kind, FuncFormatter(lambda x, _: f"{x:g}")))
            ax.xaxis.set_minor_formatter(NullFormatter())
            unit = {"nnz": "non-zero parameters", "bytes": "bytes on disk",
                    "latency": "ms per call, 1 thread"}[kind]
            ax.set_xlabel(f"{unit} (log)")
            ax.set_title(fr.axis_label(axis), fontsize=9)
            ax.set_ylabel(info.label)
        for ax in list(grid.flat)[len(axes):]:
            ax.set_visible(False)
        grid.flat[0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{experiment}: {info.label} ({info.direction}) against each budget; "
                     "ringed = Pareto-optimal")
        fig.tight_layout()
    return fig


def plot_speedup(latency: pd.DataFrame, crossovers: pd.DataFrame, experiment: str):
    """Sparse over dense speedup against sparsity (large models), per batch; 1 = break-even."""
    sparse = latency[(latency["mode"] == "sparse") & (latency["role"] != "small-dense")]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for (model, size, batch), g in sparse.groupby(["model", "size", "batch"]):
            agg = g.groupby("sparsity").agg(m=("speedup", "mean"), lo=("speedup_q25", "mean"),
                                            hi=("speedup_q75", "mean")).reset_index()
            err = [(agg["m"] - agg["lo"]).clip(lower=0), (agg["hi"] - agg["m"]).clip(lower=0)]
            line = ax.errorbar(agg["sparsity"] * 100, agg["m"], yerr=err, marker="o", capsize=3,
                               label=f"{model} {fmt_size(size)}, batch {batch}")
            hit = crossovers[(crossovers["model"] == model) & (crossovers["size"] == size)
                             & (crossovers["batch"] == batch)
                             & (crossovers["source"] == fr.RUNS_SOURCE)]
            if len(hit) and not pd.isna(hit["crossover_sparsity"].iloc[0]):
                ax.axvline(hit["crossover_sparsity"].iloc[0] * 100, ls=":",
                           color=line[0].get_color())
        ax.axhline(1.0, color="black", lw=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
        swept = crossovers[crossovers["source"] != fr.RUNS_SOURCE]
        for _, row in swept.iterrows():  # the sweeps: the run's weights re-pruned (dashed)
            pts = sorted((float(c.split("@")[1]), row[c]) for c in swept.columns
                         if c.startswith("speedup@") and not pd.isna(row[c]))
            ax.plot([100 * p for p, _ in pts], [v for _, v in pts], ls="--", marker=".",
                    label=f"{row['model']} {fmt_size(row['size'])}, batch {row['batch']}, "
                          f"{row['source']}")
        ax.set_xlabel("sparsity of the pruned weights (%)")
        ax.set_ylabel("speedup of sparse (CSR or BSR) over dense execution")
        ax.set_title(f"{experiment}: where sparse execution pays (one CPU thread)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


# -- entry point -----------------------------------------------------------------------------------


def write_experiment_report(experiment: str, metrics_files: Iterable[str | Path],
                            footprint_files: Iterable[str | Path],
                            latency_files: Iterable[str | Path], results: str | Path,
                            slack: float) -> list[Path]:
    """Every table and figure of the module docstring; returns the written paths."""
    results = Path(results)
    tables, figures = results / "tables", results / "figures"
    tables.mkdir(parents=True, exist_ok=True)
    metrics = fr.load_json(metrics_files)
    footprints, latencies = fr.load_json(footprint_files), fr.load_json(latency_files)
    written = []
    fp = fr.footprint_rows(footprints)
    path = tables / f"{experiment}{paths.FOOTPRINT_TABLE}.csv"
    fp[fr.FOOTPRINT_COLUMNS].to_csv(path, index=False)
    lat = fr.latency_rows(latencies)
    written += [path, tables / f"{experiment}{paths.LATENCY_TABLE}.csv"]
    lat[fr.LATENCY_COLUMNS].to_csv(written[-1], index=False)
    configs = fr.configurations(metrics, footprints, latencies)
    written += write_table(configs, frontier_display(configs), tables,
                           f"{experiment}{paths.FRONTIER_TABLE}",
                           caption=f"{experiment}: cost of every configuration (* Pareto-optimal)")
    budgets = fr.budget_table(configs, slack)
    written += write_table(budgets, budget_display(budgets), tables,
                           f"{experiment}{paths.BUDGET_TABLE}",
                           caption=f"{experiment}: large-sparse vs small-dense at the "
                                   "small-dense model's budget")
    cross = fr.crossover_table(lat, latencies)
    written += write_table(cross, crossover_display(cross), tables,
                           f"{experiment}{paths.CROSSOVER_TABLE}",
                           caption=f"{experiment}: sparse over dense execution speedup")
    written += save_figure(plot_frontier(configs, experiment), figures,
                           f"{experiment}{paths.FRONTIER_FIGURE}")
    written += save_figure(plot_speedup(lat, cross, experiment), figures,
                           f"{experiment}{paths.LATENCY_FIGURE}")
    return written
