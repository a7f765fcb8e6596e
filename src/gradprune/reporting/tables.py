"""Per-experiment result tables in the paper's layout.

Columns: Model, Width (vision) or Units (LM/translation), Sparsity, NNZ (M), one column per metric
(task metric first) and, when any configuration has several seeds, ``Seeds``. Cells read
``mean ± std`` over seeds. Rows: by size (largest first), then model, then sparsity.
"""

from __future__ import annotations

import pandas as pd

from gradprune.reporting.collect import aggregate_seeds, experiment_metrics
from gradprune.reporting.formatting import (
    fmt_nnz,
    fmt_size,
    fmt_sparsity,
    fmt_value,
    size_header,
)

ROW_ORDER = ["size", "model", "target_sparsity"]


def sort_rows(df: pd.DataFrame, size="size", model="model", sparsity="target_sparsity"):
    return df.sort_values([size, model, sparsity], ascending=[False, True, True],
                          ignore_index=True)


def experiment_table(runs: pd.DataFrame, experiment: str, decimals: int = 2):
    """``(numeric, display)`` tables of one experiment.

    ``numeric`` (for CSV): model, size, role, sparsity, nnz_millions, model_sparsity, n_seeds,
    seeds, and per metric ``<m>`` (mean over seeds) and ``<m>_std``.
    ``display`` (for Markdown/LaTeX): the paper's layout with formatted cells.
    """
    df = runs[runs["experiment"] == experiment]
    if df.empty:
        raise ValueError(f"no runs for experiment {experiment!r}")
    metrics = experiment_metrics(df)
    agg = sort_rows(aggregate_seeds(df, metrics))
    numeric = agg.rename(columns={"target_sparsity": "sparsity"}).drop(columns="experiment")
    family = df["family"].iloc[0]
    multi = (agg["n_seeds"] >= 2).any()
    display = pd.DataFrame({
        "Model": agg["model"],
        size_header(family): agg["size"].map(fmt_size),
        "Sparsity": agg["target_sparsity"].map(fmt_sparsity),
        "NNZ (M)": agg["nnz_millions"].map(fmt_nnz),
    })
    for m in metrics:
        display[m] = [fmt_value(r[m], r[f"{m}_std"], r["n_seeds"], decimals)
                      for _, r in agg.iterrows()]
    if multi:
        display["Seeds"] = agg["n_seeds"].astype(int)
    return numeric, display
