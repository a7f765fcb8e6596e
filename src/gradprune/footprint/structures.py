"""Mask structures side by side: unstructured and block-sparse large models of one base
experiment against the same small-dense partners, by metric, bytes and latency (issue 24).

A *structure comparison* (config ``structure_comparisons: {<name>: [<experiment>, ...]}``) puts
the runs of experiments that differ only in their mask structure (``lstm-ptb`` and its
``extends`` variants with ``pruning.block``) into one set of configurations. Each pruned
configuration is labelled with its structure (``lstm_lm [4x4]``; unstructured ones keep their
model name), so the frontier code of :mod:`gradprune.footprint.frontier` ranks them as different
configurations; a small-dense model listed by several of the experiments is the same run
settings-for-settings (its settings carry no pruning section), so it is kept once, from the first
experiment that has it.

Outputs: ``tables/structures/<name>.csv|md|tex`` (one row per large-sparse configuration and axis ``nnz`` /
``latency:b<batch>``: the NNZ-matched small-dense partner and the verdict by the rule of
:func:`gradprune.footprint.frontier.budget_table`, i.e. the best large-sparse model that fits the
partner's budget, judged over paired seeds) and ``figures/structures/<name>.png|pdf``: the metric against the
latency of one call at each batch, every configuration of every structure, seed means.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from gradprune.footprint import frontier as fr
from gradprune.reporting.figures import STYLE, save_figure
from gradprune.reporting.formatting import fmt_size, fmt_sparsity, write_table

COLUMNS = ["axis", "structure", "ls_size", "ls_sparsity", "ls_cost", "ls_value", "budget_size",
           "budget", "sd_value", "fits", "difference", "verdict"]


def structure_of(footprint_or_latency: dict) -> str:
    """``unstructured`` or ``4x4`` (the block shapes a run's experiment prunes in)."""
    blocks = sorted({tuple(b) for b in footprint_or_latency.get("blocks", {}).values()})
    return ", ".join(f"{h}x{w}" for h, w in blocks) if blocks else "unstructured"


def _labelled(d: dict, structure: str) -> dict:
    if d["role"] == "small-dense" or structure == "unstructured":
        return d
    return {**d, "model": f"{d['model']} [{structure}]"}


def combine(sets: Iterable[tuple[list[dict], list[dict], list[dict]]]
            ) -> tuple[list[dict], list[dict], list[dict]]:
    """(metrics, footprints, latencies) of several experiments as one set (module docstring)."""
    out: tuple[list, list, list] = ([], [], [])
    seen_small: set[tuple] = set()
    for metrics, footprints, latencies in sets:
        structure = structure_of(latencies[0]) if latencies else "unstructured"
        small_here = set()
        for kind, records in zip(out, (metrics, footprints, latencies)):
            for d in records:
                key = (str(d["model"]), float(d["size"]), int(d["seed"]))
                if d["role"] == "small-dense":
                    if key in seen_small:
                        continue
                    small_here.add(key)
                kind.append(_labelled(d, structure))
        seen_small |= small_here
    return out


def comparison_table(configs: pd.DataFrame, slack: float) -> pd.DataFrame:
    """Per axis (NNZ and latency at each batch) and large-sparse configuration: its NNZ-matched
    partner's budget and whether it fits and wins (the budget rule, one configuration at a time)."""
    rows = []
    for axis, g in configs[configs["axis"].isin(
            ["nnz"] + [a for a in configs["axis"].unique() if a.startswith("latency:")])].groupby(
                "axis", sort=False):
        nnz = configs[configs["axis"] == "nnz"].set_index(fr.CONFIG_KEYS)["cost"]
        small = g[g["role"] == "small-dense"]
        for _, ls in g[g["role"] == "large-sparse"].iterrows():
            own_nnz = nnz[tuple(ls[k] for k in fr.CONFIG_KEYS)]
            partner_nnz = {i: nnz[tuple(r[k] for k in fr.CONFIG_KEYS)] for i, r in small.iterrows()}
            sd = small.loc[min(partner_nnz, key=lambda i: abs(partner_nnz[i] - own_nnz))]
            pair = pd.concat([ls.to_frame().T, sd.to_frame().T])
            budget = fr.budget_table(mark(pair), slack).iloc[0]
            rows.append({"axis": axis, "structure": ls["model"], "ls_size": ls["size"],
                         "ls_sparsity": ls["sparsity"], "ls_cost": ls["cost"],
                         "ls_value": ls["value"], "budget_size": sd["size"], "budget": sd["cost"],
                         "sd_value": sd["value"], "fits": bool(ls["cost"] <= sd["cost"] * (1 + slack)),
                         "difference": budget["difference"], "verdict": budget["verdict"]})
    return pd.DataFrame(rows, columns=COLUMNS)


def mark(pair: pd.DataFrame) -> pd.DataFrame:
    pair = pair.reset_index(drop=True)
    for col in ("cost", "value", "size", "sparsity"):
        pair[col] = pair[col].astype(float)
    return pair


def display(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    cost = {"nnz": lambda v: f"{v / 1e6:.2f}M"}
    fmt_cost = lambda axis, v: cost.get(axis, lambda x: f"{x:.2f} ms")(v)
    return pd.DataFrame({
        "Budget": [fr.axis_label(a) for a in table["axis"]],
        "Large-sparse": [f"{m} {fmt_size(s)} @ {fmt_sparsity(p)}" for m, s, p in
                         zip(table["structure"], table["ls_size"], table["ls_sparsity"])],
        "Its cost": [fmt_cost(a, v) for a, v in zip(table["axis"], table["ls_cost"])],
        f"Its {metric}": table["ls_value"].map(lambda v: f"{v:.2f}"),
        "Small-dense": [f"{fmt_size(s)}: {fmt_cost(a, c)}" for a, s, c in
                        zip(table["axis"], table["budget_size"], table["budget"])],
        f"Its {metric} ": table["sd_value"].map(lambda v: f"{v:.2f}"),
        "Fits": table["fits"].map({True: "yes", False: "no"}),
        "Verdict": table["verdict"],
    })


def plot_metric_vs_latency(configs: pd.DataFrame, name: str):
    """Metric against the latency of one call, one panel per batch, every configuration."""
    lat_axes = [a for a in configs["axis"].unique() if a.startswith("latency:")]
    metric = configs["metric"].iloc[0]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(lat_axes), figsize=(5.2 * len(lat_axes), 4.2),
                                 squeeze=False)
        for ax, axis in zip(axes[0], lat_axes):
            g = configs[configs["axis"] == axis]
            for structure, h in g.groupby("model", sort=False):
                dense_like = h["role"] != "large-sparse"
                for marker, part in (("s", h[dense_like]), ("o", h[~dense_like])):
                    if part.empty:
                        continue
                    label = structure if marker == "o" else f"{structure} (dense)"
                    ax.scatter(part["cost"], part["value"], marker=marker, label=label, s=36)
                    for _, r in part.iterrows():
                        ax.annotate(f"{fmt_size(r['size'])}@{fmt_sparsity(r['sparsity'])}",
                                    (r["cost"], r["value"]), fontsize=6,
                                    xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel(f"{fr.axis_label(axis)} (ms per call, one CPU thread)")
            ax.set_ylabel(metric)
            ax.set_title(f"{name}: {metric} against {fr.axis_label(axis)}")
            ax.legend(fontsize=6)
    return fig


def write_structure_comparison(name: str, experiments: list[str], metrics_files: Iterable[str],
                               footprint_files: Iterable[str], latency_files: Iterable[str],
                               results: str | Path, slack: float) -> list[Path]:
    """The table and figure of one comparison (module docstring); ``experiments`` in the order
    the config lists them, the files of all their runs (each names its experiment)."""
    from gradprune.footprint.paths import STRUCTURES

    results = Path(results)
    loaded = [fr.load_json(files) for files in (metrics_files, footprint_files, latency_files)]
    sets = [tuple([d for d in records if d["experiment"] == e] for records in loaded)
            for e in experiments]
    metrics, footprints, latencies = combine(sets)
    configs = fr.configurations(metrics, footprints, latencies)
    table = comparison_table(configs, slack)
    metric = configs["metric"].iloc[0]
    written = write_table(table, display(table, metric), results / "tables" / STRUCTURES, name,
                          caption=f"{name}: large-sparse models of every mask structure against "
                                  "their NNZ-matched small-dense partners' NNZ and latency budgets")
    written += save_figure(plot_metric_vs_latency(configs, name), results / "figures" / STRUCTURES,
                           name)
    return written
