"""Load many ``metrics.json`` files (schema in DEVELOPERS.md) into one tidy DataFrame.

One row per run. Fixed columns (see :data:`RUN_COLUMNS`) plus one column per reported metric,
named ``metric.<name>`` (e.g. ``metric.top1``, ``metric.test_perplexity``), and the run's
pruning schedule flattened to ``pruning.<key>`` when the config holds one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

REQUIRED_KEYS = (
    "experiment", "family", "task_metric", "model", "size", "role",
    "target_sparsity", "seed", "nnz", "params", "metrics",
)
ROLES = ("dense", "large-sparse", "small-dense")
METRIC_PREFIX = "metric."
RUN_COLUMNS = [
    "experiment", "family", "task_metric", "model", "size", "role", "target_sparsity", "seed",
    "nnz", "nnz_millions", "params", "model_sparsity", "train_steps", "wall_time_s",
    "config_hash", "commit", "dirty", "path",
]
PRUNING_KEYS = ("initial_sparsity", "final_sparsity", "begin_step", "frequency", "n_updates")


def load_metrics(path: str | Path) -> dict:
    """Read and check one metrics.json; raises ``ValueError`` naming the file and missing keys."""
    path = Path(path)
    with path.open() as fh:
        data = json.load(fh)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: metrics.json lacks keys {missing}")
    if data["role"] not in ROLES:
        raise ValueError(f"{path}: role must be one of {ROLES}, got {data['role']!r}")
    if data["task_metric"] not in data["metrics"]:
        raise ValueError(
            f"{path}: task_metric {data['task_metric']!r} not among metrics {list(data['metrics'])}"
        )
    return data


def pruning_params(data: dict) -> dict | None:
    """``provenance.config.pruning`` of a loaded metrics.json, or None when absent."""
    pruning = ((data.get("provenance") or {}).get("config") or {}).get("pruning")
    return dict(pruning) if pruning else None


def run_record(data: dict, path: str | Path | None = None) -> dict:
    """Flatten one loaded metrics.json into a dict (one DataFrame row)."""
    prov = data.get("provenance") or {}
    train = data.get("train") or {}
    row = {
        "experiment": data["experiment"],
        "family": data["family"],
        "task_metric": data["task_metric"],
        "model": str(data["model"]),
        "size": float(data["size"]),
        "role": data["role"],
        "target_sparsity": round(float(data["target_sparsity"]), 6),
        "seed": int(data["seed"]),
        "nnz": int(data["nnz"]),
        "nnz_millions": int(data["nnz"]) / 1e6,
        "params": int(data["params"]),
        "model_sparsity": float(data.get("model_sparsity", 1 - data["nnz"] / data["params"])),
        "train_steps": train.get("steps"),
        "wall_time_s": train.get("wall_time_s"),
        "config_hash": prov.get("config_hash"),
        "commit": prov.get("commit"),
        "dirty": prov.get("dirty"),
        "path": str(path) if path is not None else None,
    }
    for name, value in data["metrics"].items():
        row[METRIC_PREFIX + name] = float(value) if value is not None else float("nan")
    for key, value in (pruning_params(data) or {}).items():
        if key in PRUNING_KEYS:
            row[f"pruning.{key}"] = value
    return row


def collect_runs(metrics_files: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run, sorted by experiment, role, model, size, sparsity, seed."""
    rows = [run_record(load_metrics(p), p) for p in metrics_files]
    if not rows:
        return pd.DataFrame(columns=RUN_COLUMNS)
    df = pd.DataFrame(rows)
    metric_cols = sorted(c for c in df.columns if c.startswith(METRIC_PREFIX))
    other = [c for c in df.columns if c not in RUN_COLUMNS and c not in metric_cols]
    df = df[RUN_COLUMNS + metric_cols + other]
    dup = df.duplicated(["experiment", "model", "size", "role", "target_sparsity", "seed"])
    if dup.any():
        raise ValueError(
            "duplicate runs (same experiment/model/size/role/sparsity/seed): "
            + ", ".join(df.loc[dup, "path"].astype(str))
        )
    return df.sort_values(
        ["experiment", "role", "model", "size", "target_sparsity", "seed"], ignore_index=True
    )


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Metric names (without prefix) present in ``df``."""
    return [c[len(METRIC_PREFIX):] for c in df.columns if c.startswith(METRIC_PREFIX)]


def experiment_metrics(df: pd.DataFrame) -> list[str]:
    """The experiment's metrics, task metric first, then the others that have any value."""
    names = [m for m in metric_columns(df) if df[METRIC_PREFIX + m].notna().any()]
    task = list(dict.fromkeys(df["task_metric"]))
    return task + [m for m in names if m not in task]


def aggregate_seeds(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean/std over seeds per configuration (experiment, model, size, role, target_sparsity).

    Columns: the keys, ``nnz_millions`` (mean), ``model_sparsity`` (mean), ``n_seeds``, ``seeds``
    (comma separated), and per metric ``<m>`` (mean) and ``<m>_std`` (sample std, NaN for one seed).
    """
    keys = ["experiment", "model", "size", "role", "target_sparsity"]
    metrics = metrics if metrics is not None else metric_columns(df)
    out = []
    for key, g in df.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key))
        row["nnz_millions"] = g["nnz_millions"].mean()
        row["model_sparsity"] = g["model_sparsity"].mean()
        row["n_seeds"] = g["seed"].nunique()
        row["seeds"] = ",".join(str(s) for s in sorted(g["seed"].unique()))
        for m in metrics:
            col = METRIC_PREFIX + m
            vals = g[col].dropna() if col in g else pd.Series(dtype=float)
            row[m] = vals.mean() if len(vals) else float("nan")
            row[f"{m}_std"] = vals.std(ddof=1) if len(vals) >= 2 else float("nan")
        out.append(row)
    return pd.DataFrame(out)
