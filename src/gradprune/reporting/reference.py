"""The paper's numbers (shipped ``paper_reference.csv``) and the comparison with a reproduction.

The reference file is a copy of ``shared/reference/zhu_gupta_2017.csv``; every value keeps its
``confidence`` label (``seed`` / ``corroborated`` / ``recollection``), which every comparison
table and figure carries along.

A paper row and a reproduced configuration are the same row of a table when they agree on
(experiment, size, sparsity, metric): experiment is an equal string, size is numerically equal,
sparsity equal to 4 decimals, and the metric equal after
:data:`gradprune.reporting.directions.PAPER_METRICS` (a paper metric is compared with the
reproduced metric computed the paper's way: the paper's BLEU with ``bleu_tok``; the row's
``paper_metric`` keeps the paper's name and its note says why). The model name is not a key: an experiment trains one model (the schema's
``model``) and its sizes tell its rows apart, while the paper names its models its own way
(``LSTM-large`` for the ``lstm_lm`` of 1500 units).

Coverage: with the preset's plan (``planned``), every paper row says whether a run is planned
for it; the ``coverage`` column holds ``reproduced``, ``planned, no result``, ``not planned``
(or ``no result`` without a plan) for paper rows and ``not in paper`` for reproduced rows the
paper lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import pandas as pd

from gradprune.reporting.collect import aggregate_seeds, experiment_metrics
from gradprune.reporting.directions import PAPER_METRICS
from gradprune.reporting.formatting import (
    fmt_nnz,
    fmt_signed,
    fmt_size,
    fmt_sparsity,
    fmt_value,
    size_header,
)

CONFIDENCE_LEVELS = ("seed", "corroborated", "recollection")
REFERENCE_COLUMNS = ["table", "experiment", "model", "size", "sparsity", "nnz_millions", "metric",
                     "value", "confidence", "note"]


def reference_path() -> Path:
    """Path of the shipped ``paper_reference.csv``."""
    return Path(str(resources.files("gradprune.reporting").joinpath("paper_reference.csv")))


def load_reference(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's rows; ``value`` is NaN where the paper's number is unknown here."""
    ref = pd.read_csv(path or reference_path(), dtype={"note": str, "confidence": str})
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise ValueError(f"reference file lacks columns {missing}")
    bad = set(ref["confidence"].dropna()) - set(CONFIDENCE_LEVELS)
    if bad:
        raise ValueError(f"unknown confidence labels {sorted(bad)}")
    ref["size"] = ref["size"].astype(float)
    ref["sparsity"] = ref["sparsity"].astype(float).round(6)
    ref["note"] = ref["note"].fillna("")
    return ref


# Paper metric -> the reproduced metric it is compared with (identity when absent).
PAPER_METRIC_ALIASES: dict[str, str] = {paper: ours for paper, (ours, _) in PAPER_METRICS.items()}
COVERAGE = ("reproduced", "planned, no result", "not planned", "no result", "not in paper")
_SIZE_DECIMALS, _SPARSITY_DECIMALS = 6, 4


def _size_key(size) -> float:
    """Sizes as numbers: width multipliers and unit counts (``'0.75'``, ``1500``)."""
    try:
        return round(float(size), _SIZE_DECIMALS)
    except (TypeError, ValueError):
        raise ValueError(
            f"size {size!r} is not a number; the paper comparison pairs rows by numeric size "
            "(width multiplier or units): give sizes as numbers in the preset"
        ) from None


def planned_rows(planned: Iterable) -> set[tuple[str, float, float]]:
    """(experiment, size, sparsity) of every planned run (``gradprune.config.Run`` objects)."""
    return {(r.experiment, _size_key(r.size), round(float(r.sparsity), _SPARSITY_DECIMALS))
            for r in planned}


def _one_model_per_size(df: pd.DataFrame, experiment: str) -> dict[float, str]:
    """size -> the model name of the experiment's runs; two models of one size are an error."""
    models: dict[float, str] = {}
    for (size, model), _ in df.groupby(["size", "model"], sort=True):
        key = _size_key(size)
        if key in models and models[key] != model:
            raise ValueError(
                f"experiment {experiment!r} has runs of two models of size {size:g} "
                f"({models[key]!r} and {model!r}); the paper comparison pairs paper rows with "
                "runs by (experiment, size, sparsity, metric), so an experiment may hold only "
                "one model per size: put the other model in an experiment of its own"
            )
        models[key] = model
    return models


def comparison_table(runs: pd.DataFrame, experiment: str, compare_with_paper: bool,
                     reference: pd.DataFrame | None = None, decimals: int = 2,
                     planned: Iterable | None = None,
                     metric_aliases: Mapping[str, str] | None = None):
    """``(numeric, display)`` comparison of one experiment, one row per (configuration, metric).

    With ``compare_with_paper``: columns model, size, sparsity, metric, nnz_millions,
    paper_model, paper_metric, paper_nnz_millions, paper, reproduced, reproduced_std, n_seeds,
    difference (reproduced - paper, in the metric's unit; not direction-signed), confidence,
    note, coverage (see the module docstring). Paper rows with no reproduction appear with an
    empty ``reproduced``; reproduced rows with no paper row with an empty ``paper``.
    ``planned``: the preset's runs (``gradprune.config.plan_runs``), which tells a paper row
    that is planned from one that is not. ``metric_aliases``: paper metric -> reproduced metric
    (default :data:`PAPER_METRIC_ALIASES`). Without ``compare_with_paper`` (scaled-down
    presets): the reproduced columns only.
    """
    df = runs[runs["experiment"] == experiment]
    if df.empty:
        raise ValueError(f"no runs for experiment {experiment!r}")
    metrics = experiment_metrics(df)
    agg = aggregate_seeds(df, metrics)
    long = []
    for _, r in agg.iterrows():
        for m in metrics:
            if pd.isna(r[m]):
                continue
            long.append({"model": r["model"], "size": r["size"], "sparsity": r["target_sparsity"],
                         "metric": m, "nnz_millions": r["nnz_millions"], "reproduced": r[m],
                         "reproduced_std": r[f"{m}_std"], "n_seeds": r["n_seeds"]})
    rep = pd.DataFrame(long, columns=["model", "size", "sparsity", "metric", "nnz_millions",
                                      "reproduced", "reproduced_std", "n_seeds"])
    if compare_with_paper:
        table = _with_paper(rep, df, experiment, reference, planned, metric_aliases)
        cols = ["model", "size", "sparsity", "metric", "nnz_millions", "paper_model",
                "paper_metric", "paper_nnz_millions", "paper", "reproduced", "reproduced_std",
                "n_seeds", "difference", "confidence", "note", "coverage"]
    else:
        table = rep
        cols = ["model", "size", "sparsity", "metric", "nnz_millions", "reproduced",
                "reproduced_std", "n_seeds"]
    order = {m: i for i, m in enumerate(dict.fromkeys(metrics + list(table["metric"])))}
    table = table.assign(_m=table["metric"].map(order)).sort_values(
        ["size", "model", "sparsity", "_m"], ascending=[False, True, True, True],
        ignore_index=True).drop(columns="_m")[cols]

    family = df["family"].iloc[0]
    display = pd.DataFrame({
        "Model": table["model"],
        size_header(family): table["size"].map(fmt_size),
        "Sparsity": table["sparsity"].map(fmt_sparsity),
        "Metric": table["metric"],
        "NNZ (M)": table["nnz_millions"].map(fmt_nnz),
    })
    if compare_with_paper:
        display["Paper NNZ (M)"] = table["paper_nnz_millions"].map(fmt_nnz)
        display["Paper"] = [fmt_value(v, decimals=decimals) for v in table["paper"]]
    n = table["n_seeds"].fillna(0).astype(int)
    display["Reproduced"] = [fmt_value(v, s, k, decimals) for v, s, k in
                             zip(table["reproduced"], table["reproduced_std"], n)]
    display["Seeds"] = n.where(n > 0, "–") if len(n) else n
    if compare_with_paper:
        display["Difference"] = table["difference"].map(lambda x: fmt_signed(x, decimals))
        display["Confidence"] = table["confidence"].fillna("–")
        display["Coverage"] = table["coverage"]
    return table, display


def _with_paper(rep: pd.DataFrame, runs: pd.DataFrame, experiment: str,
                reference: pd.DataFrame | None, planned: Iterable | None,
                metric_aliases: Mapping[str, str] | None) -> pd.DataFrame:
    """``rep`` outer-joined with the experiment's paper rows on (size, sparsity, metric)."""
    aliases = PAPER_METRIC_ALIASES if metric_aliases is None else metric_aliases
    models = _one_model_per_size(runs, experiment)
    ref = reference if reference is not None else load_reference()
    ref = ref[ref["experiment"] == experiment]
    ref = pd.DataFrame({
        "size": ref["size"].map(_size_key),
        "sparsity": ref["sparsity"].round(_SPARSITY_DECIMALS),
        "metric": ref["metric"].map(lambda m: aliases.get(m, m)),
        "paper_model": ref["model"], "paper_metric": ref["metric"],
        "paper_nnz_millions": ref["nnz_millions"], "paper": ref["value"],
        "confidence": ref["confidence"],
        "note": [f"{PAPER_METRICS[m][1]}; {n}".rstrip("; ") if m in PAPER_METRICS else n
                 for m, n in zip(ref["metric"], ref["note"])],
    })
    keys = ["size", "sparsity", "metric"]
    dup = ref[ref.duplicated(keys, keep=False)]
    if len(dup):
        raise ValueError(f"the reference holds two rows of {experiment!r} with the same "
                         f"(size, sparsity, metric): {dup[keys].to_dict('records')}")
    rep = rep.assign(size=rep["size"].map(_size_key),
                     sparsity=rep["sparsity"].round(_SPARSITY_DECIMALS))
    table = rep.merge(ref, on=keys, how="outer", indicator=True)
    table["difference"] = table["reproduced"] - table["paper"]
    # Paper rows without a run take the experiment's model name (one model per experiment).
    only_model = next(iter(models.values())) if len(set(models.values())) == 1 else None
    table["model"] = [m if isinstance(m, str) else models.get(s, only_model or pm)
                      for m, s, pm in zip(table["model"], table["size"], table["paper_model"])]
    plan = planned_rows(planned) if planned is not None else None

    def coverage(row) -> str:
        if row["_merge"] == "left_only":
            return "not in paper"
        if row["_merge"] == "both" and pd.notna(row["reproduced"]):
            return "reproduced"
        if plan is None:
            return "no result"
        key = (experiment, row["size"], row["sparsity"])
        return "planned, no result" if key in plan else "not planned"

    table["coverage"] = table.apply(coverage, axis=1) if len(table) else []
    return table.drop(columns="_merge")
