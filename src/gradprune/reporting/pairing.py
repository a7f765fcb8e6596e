"""The paper's headline claim, judged honestly: does large-sparse beat small-dense at equal NNZ?

Pairing. Each large-sparse configuration (model, size, target sparsity) is paired with the
small-dense configuration of the same experiment whose NNZ is nearest, measured as
``|log(nnz_large_sparse / nnz_small_dense)|`` (a ratio, so 0.5M vs 0.46M counts as close as 50M vs
46M). Ties (equal distance within 1e-9 relative) go to the *smaller* small-dense model (fewer NNZ,
then smaller size): the comparison then never hands the large-sparse model a handicap.

Matched pairs. A pair is *matched* when the large-sparse model holds at most ``nnz_tolerance``
(config ``headline.nnz_tolerance``, default 10 %) more NNZ than its small-dense partner:
``r <= 1 + tol`` with ``r = nnz_ls / nnz_sd``. The rule is one-sided, as the claim is: the sparse
model must not win by holding more parameters; a partner holding more NNZ only makes the sparse
model's task harder (and ``nnz_ratio`` shows by how much). Unmatched pairs are still listed with
their numbers, but their verdict is :data:`UNMATCHED` and no summary counts them.

The verdict of a matched pair. ``difference`` is signed so that a positive value means the
large-sparse model is better (``ls - sd`` when higher is better, ``sd - ls`` for perplexities). Seeds
pair by seed id; only seeds present on both sides take part (others are listed in
``unpaired_seeds``). Each paired seed's outcome is "large-sparse" when its difference exceeds the
metric's tie tolerance (:mod:`gradprune.reporting.directions`), "small-dense" when it is below minus
that tolerance, else "tie". Over ``n`` paired seeds:

- ``n >= 2``: :data:`LS_WINS` when *every* paired seed's outcome is "large-sparse" *and* the mean
  difference strictly exceeds the ``spread``; :data:`SD_WINS` symmetrically; otherwise
  :data:`NOT_SEPARATED` (a mean difference equal to the spread does not separate).
- ``n == 1``: :data:`ONE_SEED`; ``ahead`` still says which side the single comparison favours,
  without a claim that it would survive another seed.
- ``n == 0`` (seeds on one side only): :data:`NO_PAIRED_SEEDS`.

``spread`` is the larger of the two sides' sample standard deviations (ddof=1) over the paired
seeds: how far either model moves when only the seed changes. The alternative, the sd of the
per-seed differences, was rejected: a seed id couples the two models only weakly (same data order,
unrelated initial weights of different shapes), so pairing removes little run-to-run noise, and
with two seeds that sd is the single number ``|d0 - d1| / sqrt(2)``, which can be near zero by
coincidence and would then certify a gap smaller than either model's own seed-to-seed variation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gradprune.reporting.collect import METRIC_PREFIX
from gradprune.reporting.directions import metric_info
from gradprune.reporting.formatting import fmt_nnz, fmt_signed, fmt_size, fmt_sparsity, fmt_value

#: the default of ``headline.nnz_tolerance`` in workflow/schemas/config.schema.yaml
DEFAULT_NNZ_TOLERANCE = 0.10

LS_WINS, SD_WINS = "large-sparse wins", "small-dense wins"
NOT_SEPARATED = "not separated"
ONE_SEED = "one seed"
NO_PAIRED_SEEDS = "no paired seeds"
UNMATCHED = "unmatched NNZ"
VERDICTS = (LS_WINS, SD_WINS, NOT_SEPARATED, ONE_SEED, NO_PAIRED_SEEDS, UNMATCHED)

# Outcome of one comparison (one seed, or the means): which side is better beyond the tie tolerance.
LS, SD, TIE = "large-sparse", "small-dense", "tie"

HEADLINE_COLUMNS = [
    "experiment", "metric", "higher_is_better",
    "ls_model", "ls_size", "ls_sparsity", "ls_nnz_millions",
    "sd_model", "sd_size", "sd_nnz_millions", "nnz_ratio", "nnz_tolerance", "matched",
    "ls_mean", "ls_std", "ls_n_seeds", "sd_mean", "sd_std", "sd_n_seeds",
    "paired_seeds", "n_paired_seeds", "unpaired_seeds",
    "difference", "spread", "tie_tolerance", "seed_differences", "seed_outcomes", "ahead",
    "verdict",
]


def outcome(difference: float, tie_tolerance: float) -> str:
    """:data:`LS`, :data:`SD` or :data:`TIE` for one signed difference (positive = LS better)."""
    if difference is None or math.isnan(difference):
        return "n/a"
    if abs(difference) <= tie_tolerance:
        return TIE
    return LS if difference > 0 else SD


@dataclass(frozen=True)
class Judgement:
    """The verdict of one pair and the numbers behind it (see the module docstring)."""

    verdict: str
    difference: float          # mean signed difference over the paired seeds
    spread: float              # max of the two sides' sds over the paired seeds (NaN if n < 2)
    ahead: str                 # outcome of the mean difference
    seed_differences: dict = field(default_factory=dict)
    seed_outcomes: dict = field(default_factory=dict)
    unpaired: dict = field(default_factory=dict)  # {"large-sparse": [seeds], "small-dense": [...]}

    @property
    def n_paired(self) -> int:
        return len(self.seed_differences)


def judge(ls_by_seed: Mapping[int, float], sd_by_seed: Mapping[int, float],
          higher_is_better: bool, tie_tolerance: float) -> Judgement:
    """Apply the verdict rule to one pair's per-seed metric values (``{seed: value}`` per side)."""
    sign = 1.0 if higher_is_better else -1.0
    common = sorted(set(ls_by_seed) & set(sd_by_seed))
    unpaired = {LS: sorted(set(ls_by_seed) - set(common)), SD: sorted(set(sd_by_seed) - set(common))}
    diffs = {s: sign * (float(ls_by_seed[s]) - float(sd_by_seed[s])) for s in common}
    outcomes = {s: outcome(d, tie_tolerance) for s, d in diffs.items()}
    if not common:
        return Judgement(NO_PAIRED_SEEDS, float("nan"), float("nan"), "n/a", {}, {}, unpaired)
    diff = float(np.mean(list(diffs.values())))
    ahead = outcome(diff, tie_tolerance)
    if len(common) == 1:
        return Judgement(ONE_SEED, diff, float("nan"), ahead, diffs, outcomes, unpaired)
    spread = max(float(np.std([ls_by_seed[s] for s in common], ddof=1)),
                 float(np.std([sd_by_seed[s] for s in common], ddof=1)))
    if all(o == LS for o in outcomes.values()) and diff > spread:
        v = LS_WINS
    elif all(o == SD for o in outcomes.values()) and -diff > spread:
        v = SD_WINS
    else:
        v = NOT_SEPARATED
    return Judgement(v, diff, spread, ahead, diffs, outcomes, unpaired)


def nnz_matched(nnz_ls: float, nnz_sd: float, nnz_tolerance: float) -> bool:
    """The large-sparse side holds at most ``nnz_tolerance`` (a fraction) more NNZ than the
    small-dense side."""
    ratio = float(nnz_ls) / float(nnz_sd)
    # the relative slack keeps a ratio of exactly 1 + tol (1.1M vs 1.0M at 10 %) inside
    return ratio <= (1.0 + nnz_tolerance) * (1.0 + 1e-12)


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
            "n": int(runs["seed"].nunique()),
            "by_seed": {int(s): float(v) for s, v in zip(runs["seed"], vals)}}


def _seeds_text(seeds) -> str:
    return ";".join(str(s) for s in seeds)


def headline_pairs(runs: pd.DataFrame, experiment: str | None = None,
                   tolerance: float | Mapping[str, float] | None = None,
                   nnz_tolerance: float = DEFAULT_NNZ_TOLERANCE) -> pd.DataFrame:
    """One row per large-sparse configuration with its nearest-NNZ small-dense partner.

    ``tolerance``: the tie tolerance (one number, ``{metric: number}``, or None for the metric's
    own); ``nnz_tolerance``: see the module docstring. Columns: :data:`HEADLINE_COLUMNS`.
    Experiments without both roles give no rows.
    """
    if not nnz_tolerance >= 0:
        raise ValueError(f"nnz_tolerance must be a fraction >= 0 (0.10 = 10 %), got {nnz_tolerance!r}")
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
            j = judge(a["by_seed"], b["by_seed"], info.higher_is_better, tol)
            matched = nnz_matched(nnz, partner["nnz"], nnz_tolerance)
            unpaired = ";".join(f"{'ls' if side == LS else 'sd'}:{s}"
                                for side, seeds in j.unpaired.items() for s in seeds)
            rows.append({
                "experiment": exp, "metric": metric, "higher_is_better": info.higher_is_better,
                "ls_model": model, "ls_size": size, "ls_sparsity": sparsity,
                "ls_nnz_millions": nnz / 1e6,
                "sd_model": partner["model"], "sd_size": partner["size"],
                "sd_nnz_millions": partner["nnz"] / 1e6, "nnz_ratio": nnz / partner["nnz"],
                "nnz_tolerance": nnz_tolerance, "matched": matched,
                "ls_mean": a["mean"], "ls_std": a["std"], "ls_n_seeds": a["n"],
                "sd_mean": b["mean"], "sd_std": b["std"], "sd_n_seeds": b["n"],
                "paired_seeds": _seeds_text(j.seed_differences), "n_paired_seeds": j.n_paired,
                "unpaired_seeds": unpaired,
                "difference": j.difference, "spread": j.spread, "tie_tolerance": tol,
                "seed_differences": ";".join(f"{s}:{d:+.4g}" for s, d in j.seed_differences.items()),
                "seed_outcomes": ";".join(f"{s}:{o}" for s, o in j.seed_outcomes.items()),
                "ahead": j.ahead,
                "verdict": j.verdict if matched else UNMATCHED,
            })
    out = pd.DataFrame(rows, columns=HEADLINE_COLUMNS)
    if not out.empty:
        out = out.sort_values(["experiment", "ls_size", "ls_model", "ls_sparsity"],
                              ascending=[True, False, True, True], ignore_index=True)
    return out


def verdict_text(row: Mapping) -> str:
    """The verdict as a reader should see it: one seed and unmatched pairs say what they are."""
    v = row["verdict"]
    if v == ONE_SEED:
        lead = "tie" if row["ahead"] == TIE else f"{row['ahead']} ahead"
        return f"one seed only ({lead}; no verdict)"
    if v == UNMATCHED:
        return "unmatched NNZ (excluded)"
    return v


def verdict_counts(pairs: pd.DataFrame) -> dict[str, int]:
    """``{verdict: count}`` over the matched pairs (unmatched ones never count towards a claim)."""
    matched = pairs[pairs["verdict"] != UNMATCHED]
    return {v: int((matched["verdict"] == v).sum()) for v in VERDICTS if v != UNMATCHED}


def verdict_summary(pairs: pd.DataFrame) -> str:
    """One line: the verdict counts of the matched pairs, then how many were unmatched."""
    counts = [f"{v}: {n}" for v, n in verdict_counts(pairs).items() if n]
    text = "matched pairs: " + (", ".join(counts) if counts else "none")
    n_unmatched = int((pairs["verdict"] == UNMATCHED).sum())
    if n_unmatched:
        text += f"; unmatched NNZ (excluded): {n_unmatched}"
    return text


def headline_display(pairs: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """The formatted headline table (Markdown/LaTeX)."""
    return pd.DataFrame({
        "Large-sparse": [f"{m} {fmt_size(s)} @ {fmt_sparsity(p)}" for m, s, p in
                         zip(pairs["ls_model"], pairs["ls_size"], pairs["ls_sparsity"])],
        "LS NNZ (M)": pairs["ls_nnz_millions"].map(fmt_nnz),
        "Small-dense": [f"{m} {fmt_size(s)}" for m, s in zip(pairs["sd_model"], pairs["sd_size"])],
        "SD NNZ (M)": pairs["sd_nnz_millions"].map(fmt_nnz),
        "NNZ ratio": [f"{r:.2f}" if ok else f"{r:.2f} (unmatched)" for r, ok in
                      zip(pairs["nnz_ratio"], pairs["matched"])],
        "Metric": pairs["metric"],
        "Large-sparse value": [fmt_value(m, s, n, decimals) for m, s, n in
                               zip(pairs["ls_mean"], pairs["ls_std"], pairs["ls_n_seeds"])],
        "Small-dense value": [fmt_value(m, s, n, decimals) for m, s, n in
                              zip(pairs["sd_mean"], pairs["sd_std"], pairs["sd_n_seeds"])],
        "Gain": pairs["difference"].map(lambda x: fmt_signed(x, decimals)),
        "Spread": pairs["spread"].map(lambda x: "–" if pd.isna(x) else f"{x:.{decimals}f}"),
        "Paired seeds": pairs["n_paired_seeds"].astype(int),
        "Verdict": [verdict_text(r) for _, r in pairs.iterrows()],
    })
