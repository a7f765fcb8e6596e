"""The paper's numbers (shipped ``paper_reference.csv``) and the comparison with a reproduction.

The reference file is a copy of ``shared/reference/zhu_gupta_2017.csv``; every value keeps its
``confidence`` label (``seed`` / ``corroborated`` / ``recollection``), which every comparison
table and figure carries along.

Matching a reproduced configuration to a paper row uses (experiment, model, size, sparsity, metric):
experiment and metric are equal strings; size is numerically equal; sparsity is equal within 1e-4;
model names are compared after lower-casing and dropping everything but letters and digits
(``mobilenet_v1`` == ``MobileNetV1``), and also match when one such name is a prefix of the other
(``lstm`` at 1500 units == ``LSTM-large``), as long as that leaves exactly one candidate.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from gradprune.reporting.collect import aggregate_seeds, experiment_metrics
from gradprune.reporting.directions import paper_rows_as_reproduced
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
    return paper_rows_as_reproduced(ref)  # the paper's bleu rows pair with bleu_tok


def model_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _model_matches(a: str, b: str) -> bool:
    ka, kb = model_key(a), model_key(b)
    return ka == kb or ka.startswith(kb) or kb.startswith(ka)


def map_reference_models(ref: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """``ref`` with a ``run_model`` column: the reproduced model name each paper row maps to.

    ``configs`` needs columns experiment, model, size. Exact key matches win over prefix matches;
    an ambiguous or missing match leaves ``run_model`` equal to the paper's name.
    """
    ref = ref.copy()
    run_models = []
    pairs = configs[["experiment", "model", "size"]].drop_duplicates()
    for _, r in ref.iterrows():
        cand = pairs[(pairs["experiment"] == r["experiment"])
                     & np.isclose(pairs["size"].astype(float), r["size"])]
        exact = [m for m in cand["model"] if model_key(m) == model_key(r["model"])]
        loose = [m for m in cand["model"] if _model_matches(m, r["model"])]
        chosen = exact if exact else loose
        run_models.append(chosen[0] if len(set(chosen)) == 1 else r["model"])
    ref["run_model"] = run_models
    return ref


def comparison_table(runs: pd.DataFrame, experiment: str, compare_with_paper: bool,
                     reference: pd.DataFrame | None = None, decimals: int = 2):
    """``(numeric, display)`` comparison of one experiment, one row per (configuration, metric).

    With ``compare_with_paper``: columns model, size, sparsity, metric, nnz_millions,
    paper_nnz_millions, paper, reproduced, reproduced_std, n_seeds, difference
    (reproduced - paper, in the metric's unit; not direction-signed), confidence, note. Paper rows
    with no reproduction appear with an empty ``reproduced``; reproduced rows with no paper row with
    an empty ``paper``. Without it (scaled-down presets): the same minus every paper column.
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
    keys = ["model", "size", "sparsity", "metric"]
    if compare_with_paper:
        ref = reference if reference is not None else load_reference()
        ref = ref[ref["experiment"] == experiment]
        ref = map_reference_models(ref, df)
        ref = ref.rename(columns={"value": "paper", "nnz_millions": "paper_nnz_millions"})
        ref = ref.drop(columns=["model"]).rename(columns={"run_model": "model"})
        ref = ref[keys + ["paper_nnz_millions", "paper", "confidence", "note"]]
        rep["sparsity"] = rep["sparsity"].round(4)
        ref = ref.assign(sparsity=ref["sparsity"].round(4))
        table = rep.merge(ref, on=keys, how="outer")
        table["difference"] = table["reproduced"] - table["paper"]
        cols = keys[:3] + ["metric", "nnz_millions", "paper_nnz_millions", "paper", "reproduced",
                           "reproduced_std", "n_seeds", "difference", "confidence", "note"]
    else:
        table = rep
        cols = keys[:3] + ["metric", "nnz_millions", "reproduced", "reproduced_std", "n_seeds"]
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
    return table, display
