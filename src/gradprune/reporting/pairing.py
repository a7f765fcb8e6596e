"""The paper's headline claim: large-sparse beats small-dense at equal NNZ.

Each large-sparse configuration (model, size, target sparsity; seeds pooled) is paired with the
small-dense configuration of the same experiment whose NNZ is nearest, measured as
``|log(nnz_large_sparse / nnz_small_dense)|`` (a ratio, so 0.5M vs 0.46M counts as close as 50M vs
46M). Ties (equal distance within 1e-9 relative) go to the *smaller* small-dense model (fewer NNZ,
then smaller size): the comparison then never hands the large-sparse model a handicap in parameters.

The compared metric is the experiment's ``task_metric``. ``difference`` is signed so that a
positive value means the large-sparse model is better (``ls - sd`` when higher is better,
``sd - ls`` for perplexities). The verdict is "tie" when ``|difference| <= tolerance`` (per metric,
see :mod:`gradprune.reporting.directions`), otherwise the better side.

Seeds: each side's mean and std over its seeds. The per-seed comparison pairs runs by seed id
(seeds present on both sides); ``holds_across_seeds`` is True when every paired seed gives the
same verdict as the means, False when any differs, and empty (NA) with fewer than two paired seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from gradprune.reporting.collect import METRIC_PREFIX
from gradprune.reporting.directions import metric_info
from gradprune.reporting.formatting import fmt_nnz, fmt_signed, fmt_size, fmt_sparsity, fmt_value

LS, SD = "large-sparse better", "small-dense better"
TIE = "tie"
VERDICTS = (LS, SD, TIE)

HEADLINE_COLUMNS = [
    "experiment", "metric", "higher_is_better",
    "ls_model", "ls_size", "ls_sparsity", "ls_nnz_millions",
    "sd_model", "sd_size", "sd_nnz_millions", "nnz_ratio",
    "ls_mean", "ls_std", "ls_n_seeds", "sd_mean", "sd_std", "sd_n_seeds",
    "difference", "tolerance", "verdict",
    "n_paired_seeds", "seed_differences", "seed_verdicts", "holds_across_seeds",
]


def verdict(difference: float, tolerance: float) -> str:
    """``difference`` already signed (positive = large-sparse better)."""
    if difference is None or math.isnan(difference):
        return "n/a"
    if abs(difference) <= tolerance:
        return TIE
    return LS if difference > 0 else SD


def nearest_small_dense(nnz: float, candidates: pd.DataFrame) -> pd.Series:
    """The row of ``candidates`` (columns nnz, size) nearest to ``nnz`` in log ratio; ties ->
    the smaller model."""
    dist = (candidates["nnz"].astype(float) / float(nnz)).map(lambda r: abs(math.log(r)))
    best = dist.min()
    tied = candidates[dist <= best + 1e-9 * max(1.0, best)]
    return tied.sort_values(["nnz", "size"]).iloc[0]


def _tolerance_for(metric: str, tolerance) -> float:
    if tolerance is None:
        return metric_info(metric).tie_tolerance
    if isinstance(tolerance, Mapping):
        return float(tolerance.get(metric, metric_info(metric).tie_tolerance))
    return float(tolerance)


def _side(runs: pd.DataFrame, col: str) -> dict:
    vals = runs[col].astype(float)
    return {"mean": vals.mean(), "std": vals.std(ddof=1) if len(vals) >= 2 else float("nan"),
            "n": int(runs["seed"].nunique()), "by_seed": dict(zip(runs["seed"], vals))}


def headline_pairs(runs: pd.DataFrame, experiment: str | None = None,
                   tolerance: float | Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per large-sparse configuration with its nearest-NNZ small-dense partner.

    Columns: :data:`HEADLINE_COLUMNS`. Experiments without both roles give no rows.
    """
    rows = []
    experiments = [experiment] if experiment is not None else list(dict.fromkeys(
        runs["experiment"]))
    for exp in experiments:
        df = runs[runs["experiment"] == exp]
        metric = df["task_metric"].iloc[0]
        info = metric_info(metric)
        tol = _tolerance_for(metric, tolerance)
        col = METRIC_PREFIX + metric
        df = df[df[col].notna()]
        ls_runs = df[df["role"] == "large-sparse"]
        sd_runs = df[df["role"] == "small-dense"]
        if ls_runs.empty or sd_runs.empty:
            continue
        sd_cfg = sd_runs.groupby(["model", "size"], as_index=False)["nnz"].mean()
        for (model, size, sparsity), ls in ls_runs.groupby(["model", "size", "target_sparsity"]):
            nnz = ls["nnz"].mean()
            partner = nearest_small_dense(nnz, sd_cfg)
            sd = sd_runs[(sd_runs["model"] == partner["model"])
                         & (sd_runs["size"] == partner["size"])]
            a, b = _side(ls, col), _side(sd, col)
            sign = 1.0 if info.higher_is_better else -1.0
            diff = sign * (a["mean"] - b["mean"])
            v = verdict(diff, tol)
            common = sorted(set(a["by_seed"]) & set(b["by_seed"]))
            seed_diffs = {s: sign * (a["by_seed"][s] - b["by_seed"][s]) for s in common}
            seed_verdicts = {s: verdict(d, tol) for s, d in seed_diffs.items()}
            holds = (all(x == v for x in seed_verdicts.values()) if len(common) >= 2
                     else pd.NA)
            rows.append({
                "experiment": exp, "metric": metric, "higher_is_better": info.higher_is_better,
                "ls_model": model, "ls_size": size, "ls_sparsity": sparsity,
                "ls_nnz_millions": nnz / 1e6,
                "sd_model": partner["model"], "sd_size": partner["size"],
                "sd_nnz_millions": partner["nnz"] / 1e6, "nnz_ratio": nnz / partner["nnz"],
                "ls_mean": a["mean"], "ls_std": a["std"], "ls_n_seeds": a["n"],
                "sd_mean": b["mean"], "sd_std": b["std"], "sd_n_seeds": b["n"],
                "difference": diff, "tolerance": tol, "verdict": v,
                "n_paired_seeds": len(common),
                "seed_differences": ";".join(f"{s}:{d:+.4g}" for s, d in seed_diffs.items()),
                "seed_verdicts": ";".join(f"{s}:{x}" for s, x in seed_verdicts.items()),
                "holds_across_seeds": holds,
            })
    out = pd.DataFrame(rows, columns=HEADLINE_COLUMNS)
    if not out.empty:
        out = out.sort_values(["experiment", "ls_size", "ls_model", "ls_sparsity"],
                              ascending=[True, False, True, True], ignore_index=True)
    return out


def headline_display(pairs: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """The formatted headline table (Markdown/LaTeX)."""
    multi = (pairs[["ls_n_seeds", "sd_n_seeds"]] >= 2).any(axis=None) if len(pairs) else False
    disp = pd.DataFrame({
        "Large-sparse": [f"{m} {fmt_size(s)} @ {fmt_sparsity(p)}" for m, s, p in
                         zip(pairs["ls_model"], pairs["ls_size"], pairs["ls_sparsity"])],
        "LS NNZ (M)": pairs["ls_nnz_millions"].map(fmt_nnz),
        "Small-dense": [f"{m} {fmt_size(s)}" for m, s in zip(pairs["sd_model"], pairs["sd_size"])],
        "SD NNZ (M)": pairs["sd_nnz_millions"].map(fmt_nnz),
        "Metric": pairs["metric"],
        "Large-sparse value": [fmt_value(m, s, n, decimals) for m, s, n in
                               zip(pairs["ls_mean"], pairs["ls_std"], pairs["ls_n_seeds"])],
        "Small-dense value": [fmt_value(m, s, n, decimals) for m, s, n in
                              zip(pairs["sd_mean"], pairs["sd_std"], pairs["sd_n_seeds"])],
        "Gain": pairs["difference"].map(lambda x: fmt_signed(x, decimals)),
        "Verdict": pairs["verdict"],
    })
    if multi:
        disp["Holds across seeds"] = [
            "–" if pd.isna(h) else ("yes" if h else "no") + f" ({n})"
            for h, n in zip(pairs["holds_across_seeds"], pairs["n_paired_seeds"])]
    return disp
