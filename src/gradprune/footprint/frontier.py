"""The budget frontier (RQ4): which configuration is best for a budget of NNZ, bytes or latency.

A *configuration* is one trained model (model, size, role, sparsity; seeds averaged) under one
cost *axis*:

- ``nnz``: non-zero parameters (the paper's budget); metric of the float32 model.
- ``bytes:<format>``: bytes of the model stored in that format (:mod:`gradprune.footprint.formats`)
  for the sparse layouts (``bitmask``, ``csr-rel4``, ``csr``, each fp32 and int8). A model without
  pruned weights (the dense large model, the small-dense ones) needs no index and is stored
  ``dense`` at the same precision. Metric of the float32 or the int8 model.
- ``latency:b<batch>``: median time of one inference call at that batch on one CPU thread
  (:mod:`gradprune.footprint.latency`), executed the faster way for a pruned model (dense or
  sparse), dense for the others.

Pareto-optimal (per axis): no other configuration costs at most as much and scores at least as
well, one of the two strictly. *Budget table*: each small-dense configuration sets a budget (its
own cost) on every axis; a configuration fits when its cost is at most budget x (1 + slack) (the
presets match NNZ within a few percent, see ``footprint.budget_slack``). For each budget the table
gives the best configuration that fits, the best *large-sparse* one, and the verdict of that
large-sparse model against the small-dense model setting the budget, by the headline's verdict
rule over the paired seeds (:func:`gradprune.reporting.pairing.judge`: "large-sparse wins" only
when it wins for every seed by more than the spread between seeds; "one seed" with a single seed;
"no large-sparse fits" when none does). *Crossover*: per large model and batch, the sparsity at
which sparse execution starts to beat dense (speedup 1), interpolated in log speedup between the
two measured sparsities around the first crossing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from gradprune.footprint.formats import BLOCK_FORMATS, FORMATS, split_format
from gradprune.reporting.directions import metric_info
from gradprune.reporting.pairing import judge

SPARSE_FORMATS = tuple(f for f in FORMATS if split_format(f)[0] != "dense")
NO_FIT = "no large-sparse fits"
FOOTPRINT_COLUMNS = ["model", "size", "sparsity", "seed", "format", "bytes", "metric", "value"]
LATENCY_COLUMNS = ["model", "size", "sparsity", "seed", "mode", "batch", "median_ms", "q25_ms",
                   "q75_ms", "min_ms", "max_ms", "rounds", "speedup", "speedup_q25",
                   "speedup_q75"]
CONFIG_KEYS = ["model", "size", "role", "sparsity"]
BUDGET_COLUMNS = [
    "axis", "metric", "budget_model", "budget_size", "budget", "sd_value",
    "best_model", "best_size", "best_role", "best_sparsity", "best_storage", "best_cost",
    "best_value", "ls_model", "ls_size", "ls_sparsity", "ls_storage", "ls_cost", "ls_value",
    "difference", "verdict", "tolerance", "slack",
]
CROSSOVER_COLUMNS = ["model", "size", "batch", "crossover_sparsity", "note", "source"]
RUNS_SOURCE = "trained runs"
_LAYOUT_LABELS = {"dense": "dense", "bitmask": "bit-mask", "csr-rel4": "CSR(C)", "csr": "CSR",
                  "bsr": "BSR"}


def axis_label(axis: str) -> str:
    """``bytes:csr-rel4-int8`` -> ``bytes, CSR(C) int8``."""
    kind, _, arg = axis.partition(":")
    if kind == "nnz":
        return "NNZ"
    if kind == "bytes":
        layout, precision = split_format(arg)
        return f"bytes, {_LAYOUT_LABELS[layout]} {precision}"
    return f"latency, batch {arg.lstrip('b')}"


def load_json(files: Iterable[str | Path]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in files]


def _key(d: dict) -> dict:
    return {"model": str(d["model"]), "size": float(d["size"]),
            "sparsity": round(float(d["target_sparsity"]), 6), "seed": int(d["seed"])}


# -- tidy per-run tables ---------------------------------------------------------------------------


def footprint_rows(footprints: list[dict]) -> pd.DataFrame:
    """Every run x format: :data:`FOOTPRINT_COLUMNS` plus role, pruned, nnz, bytes_values,
    bytes_indices (the CSV keeps the first eight)."""
    rows = []
    for fp in footprints:
        metric = fp["task_metric"]
        for fmt, spec in fp["formats"].items():
            rows.append({**_key(fp), "format": fmt, "bytes": spec["bytes"], "metric": metric,
                         "value": spec["metrics"][metric], "role": fp["role"],
                         "pruned": bool(fp["pruned_tensors"]), "nnz": fp["nnz"],
                         "bytes_values": spec["bytes_values"],
                         "bytes_indices": spec["bytes_indices"]})
    extra = ["role", "pruned", "nnz", "bytes_values", "bytes_indices"]
    return pd.DataFrame(rows, columns=FOOTPRINT_COLUMNS + extra)


def latency_rows(latencies: list[dict]) -> pd.DataFrame:
    """Every run x mode x batch: :data:`LATENCY_COLUMNS` (speedup on the sparse rows) plus role."""
    rows = []
    for lat in latencies:
        speed = {("sparse", s["batch"]): s for s in lat["speedup"]}
        speed.update({("bsr", s["batch"]): s for s in lat.get("speedup_bsr", [])})
        for t in lat["timings"]:
            s = speed.get((t["mode"], t["batch"]))
            rows.append({**_key(lat), "mode": t["mode"], "batch": int(t["batch"]),
                         **{f"{k}_ms": 1e3 * t[f"{k}_s"] for k in
                            ("median", "q25", "q75", "min", "max")},
                         "rounds": lat["rounds"],
                         "speedup": s["median"] if s else np.nan,
                         "speedup_q25": s["q25"] if s else np.nan,
                         "speedup_q75": s["q75"] if s else np.nan, "role": lat["role"]})
    return pd.DataFrame(rows, columns=LATENCY_COLUMNS + ["role"])


# -- configurations and the frontier ---------------------------------------------------------------


def configurations(metrics: list[dict], footprints: list[dict], latencies: list[dict]
                   ) -> pd.DataFrame:
    """Long table: one row per (axis, configuration) with ``cost``, ``storage`` (the format or
    execution used), ``value`` (mean over seeds), ``value_std``, ``n_seeds`` and ``by_seed``
    (``{seed: value}``, for the verdict rule)."""
    if not metrics:
        raise ValueError("no runs: the frontier needs metrics.json files")
    metric = metrics[0]["task_metric"]
    rows = []
    for m in metrics:
        rows.append({**_key(m), "role": m["role"], "axis": "nnz", "storage": "",
                     "cost": float(m["nnz"]), "value": float(m["metrics"][metric])})
    # The block formats are axes only where some run was stored in them (block experiments).
    block = tuple(f for f in BLOCK_FORMATS if any(f in fp["formats"] for fp in footprints))
    for fp in footprints:
        pruned = bool(fp["pruned_tensors"])
        for fmt in SPARSE_FORMATS + block:
            if pruned and fmt not in fp["formats"]:
                continue
            precision = split_format(fmt)[1]
            used = fmt if pruned else ("dense" if precision == "fp32" else "dense-int8")
            spec = fp["formats"][used]
            rows.append({**_key(fp), "role": fp["role"], "axis": f"bytes:{fmt}", "storage": used,
                         "cost": float(spec["bytes"]), "value": float(spec["metrics"][metric])})
    values = {tuple(_key(m).values()): float(m["metrics"][metric]) for m in metrics}
    for lat in latencies:
        pruned = lat["role"] == "large-sparse"
        by = {(t["mode"], t["batch"]): t["median_s"] for t in lat["timings"]}
        for b in sorted({b for _, b in by}):
            modes = ["dense", "sparse", "bsr"] if pruned else ["dense"]
            mode = min((m for m in modes if (m, b) in by), key=lambda m: by[(m, b)])
            key = _key(lat)
            rows.append({**key, "role": lat["role"], "axis": f"latency:b{b}", "storage": mode,
                         "cost": 1e3 * by[(mode, b)], "value": values[tuple(key.values())]})
    df = pd.DataFrame(rows)
    out = []
    for (axis, *key), g in df.groupby(["axis"] + CONFIG_KEYS, sort=False):
        out.append({"axis": axis, **dict(zip(CONFIG_KEYS, key)),
                    "storage": ",".join(dict.fromkeys(g["storage"])),
                    "cost": g["cost"].mean(), "value": g["value"].mean(),
                    "value_std": g["value"].std(ddof=1) if len(g) >= 2 else np.nan,
                    "n_seeds": g["seed"].nunique(), "metric": metric,
                    "by_seed": dict(zip(g["seed"].astype(int), g["value"]))})
    return mark_pareto(pd.DataFrame(out), metric_info(metric).higher_is_better)


def mark_pareto(configs: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Add ``pareto`` (per axis): no other configuration is at least as cheap and as good, one of
    the two strictly."""
    configs = configs.copy()
    sign = 1.0 if higher_is_better else -1.0
    flags = pd.Series(False, index=configs.index)
    for _, g in configs.groupby("axis", sort=False):
        cost, score = g["cost"].to_numpy(), sign * g["value"].to_numpy()
        for i, idx in enumerate(g.index):
            dominated = ((cost <= cost[i]) & (score >= score[i])
                         & ((cost < cost[i]) | (score > score[i])))
            flags[idx] = not dominated.any()
    configs["pareto"] = flags
    return configs


def budget_table(configs: pd.DataFrame, slack: float, tolerance: float | None = None
                 ) -> pd.DataFrame:
    """One row per (small-dense budget, axis); see the module docstring."""
    metric = configs["metric"].iloc[0]
    info = metric_info(metric)
    tol = info.tie_tolerance if tolerance is None else tolerance
    sign = 1.0 if info.higher_is_better else -1.0
    higher = info.higher_is_better
    rows = []
    for axis, g in configs.groupby("axis", sort=False):
        for _, sd in g[g["role"] == "small-dense"].sort_values("cost").iterrows():
            limit = sd["cost"] * (1.0 + slack)
            fits = g[g["cost"] <= limit]
            best = fits.loc[(sign * fits["value"]).idxmax()]
            ls_fits = fits[fits["role"] == "large-sparse"]
            row = {"axis": axis, "metric": metric, "budget_model": sd["model"],
                   "budget_size": sd["size"], "budget": sd["cost"], "sd_value": sd["value"],
                   "best_model": best["model"], "best_size": best["size"],
                   "best_role": best["role"], "best_sparsity": best["sparsity"],
                   "best_storage": best["storage"], "best_cost": best["cost"],
                   "best_value": best["value"]}
            if ls_fits.empty:
                row.update({"ls_model": None, "ls_size": np.nan, "ls_sparsity": np.nan,
                            "ls_storage": None, "ls_cost": np.nan, "ls_value": np.nan,
                            "difference": np.nan, "verdict": NO_FIT})
            else:
                ls = ls_fits.loc[(sign * ls_fits["value"]).idxmax()]
                verdict = judge(ls["by_seed"], sd["by_seed"], higher, tol)
                row.update({"ls_model": ls["model"], "ls_size": ls["size"],
                            "ls_sparsity": ls["sparsity"], "ls_storage": ls["storage"],
                            "ls_cost": ls["cost"], "ls_value": ls["value"],
                            "difference": verdict.difference, "verdict": verdict.verdict})
            row["tolerance"], row["slack"] = tol, slack
            rows.append(row)
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def holds_under_bytes(budgets: pd.DataFrame) -> pd.DataFrame:
    """Per small-dense budget: the NNZ verdict and whether each byte budget gives the same."""
    rows = []
    for (model, size), g in budgets.groupby(["budget_model", "budget_size"], sort=False):
        by_axis = dict(zip(g["axis"], g["verdict"]))
        nnz = by_axis.get("nnz")
        row = {"budget_model": model, "budget_size": size, "nnz_verdict": nnz}
        for axis, v in by_axis.items():
            if axis.startswith("bytes:"):
                row[f"same_as_nnz:{axis[len('bytes:'):]}"] = v == nnz
        rows.append(row)
    return pd.DataFrame(rows)


# -- sparse execution: where it pays -----------------------------------------------------------


def crossover(sparsities: list[float], speedups: list[float]) -> tuple[float, str]:
    """(crossover sparsity, note): the first sparsity where speedup reaches 1, interpolated in
    log speedup from the previous point; NaN when it never does."""
    pts = sorted((s, r) for s, r in zip(sparsities, speedups) if r > 0 and not math.isnan(r))
    if not pts:
        return math.nan, "no measurement"
    for k, (s, r) in enumerate(pts):
        if r >= 1.0:
            if k == 0:
                return s, f"sparse already faster at the lowest sparsity measured ({s:g})"
            s0, r0 = pts[k - 1]
            x = s0 + (0.0 - math.log(r0)) * (s - s0) / (math.log(r) - math.log(r0))
            return x, f"between {s0:g} (speedup {r0:.2f}) and {s:g} ({r:.2f})"
    s, r = pts[-1]
    return math.nan, f"not reached up to {s:g} (speedup {r:.2f})"


def kernel_label(lat: dict, mode: str) -> str:
    """``CSR``, ``CSR, 4x4 masks`` or ``BSR 4x4``: a run's execution mode and its blocks."""
    blocks = sorted({tuple(b) for b in lat.get("blocks", {}).values()})
    shapes = ", ".join(f"{h}x{w}" for h, w in blocks)
    if mode == "bsr":
        return f"BSR {shapes}"
    return f"CSR, {shapes} masks" if blocks else "CSR"


def crossover_table(latency: pd.DataFrame, sweeps: list[dict] | None = None) -> pd.DataFrame:
    """Per large model (model, size) and batch: sparse speedup at each sparsity (seed means) and
    the crossover sparsity, from the trained runs; with ``sweeps`` (latency.json dicts) also one
    row per sparse kernel (CSR, or BSR in each block shape) and batch from their ``sweep``."""
    sparse = latency[latency["mode"].isin(["sparse", "bsr"]) & (latency["role"] != "small-dense")]
    rows = []
    for (mode, model, size, batch), g in sparse.groupby(["mode", "model", "size", "batch"],
                                                         sort=True):
        per = g.groupby("sparsity")["speedup"].mean()
        x, note = crossover(list(per.index), list(per.values))
        row = {"model": model, "size": size, "batch": batch, "crossover_sparsity": x,
               "note": note, "source": RUNS_SOURCE if mode == "sparse" else f"{RUNS_SOURCE}, BSR"}
        row.update({f"speedup@{s:g}": v for s, v in per.items()})
        rows.append(row)
    swept = [{"model": str(lat["model"]), "size": float(lat["size"]),
              "source": f"sweep, {kernel_label(lat, point.get('mode', 'sparse'))}",
              **{k: v for k, v in point.items() if k != "mode"}}
             for lat in sweeps or [] if "sweep" in lat for point in lat["sweep"]["speedup"]]
    if swept:
        df = pd.DataFrame(swept)
        for (source, model, size, batch), g in df.groupby(["source", "model", "size", "batch"],
                                                          sort=True):
            per = g.groupby("sparsity")["median"].mean()
            x, note = crossover(list(per.index), list(per.values))
            row = {"model": model, "size": size, "batch": int(batch), "crossover_sparsity": x,
                   "note": note, "source": source}
            row.update({f"speedup@{s:g}": v for s, v in per.items()})
            rows.append(row)
    speed = sorted({k for r in rows for k in r if k.startswith("speedup@")},
                   key=lambda k: float(k.split("@")[1]))
    return pd.DataFrame(rows, columns=CROSSOVER_COLUMNS + speed)
