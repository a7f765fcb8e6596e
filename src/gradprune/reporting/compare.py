"""A user's runs against committed ones (``gradprune compare``): the numbers, the settings, the
machine, and whether each verdict survives.

Runs pair by identity (experiment, model, size, target sparsity, seed, read from each
``metrics.json``, not from folder names: ``docs/results/<name>/`` drops the experiment folder).
Per pair of runs: both values of the task metric and their difference (yours - committed),
whether the run config hashes match (equal hashes: the same settings, so a difference comes from
the code or the machine), the commits, and the provenance fields that differ (the CPU numerics of
:func:`gradprune.provenance.cpu_numerics`, package versions, device, host).

Verdicts (:mod:`gradprune.reporting.pairing`): the committed runs are paired as the headline table
pairs them, once with their own values and once with yours in place of every run you reproduced;
a verdict is *changed* when the two differ. A user who reproduced one seed of a two-seed table thus
learns whether their numbers would move the committed verdict, not only that one seed gives none.

A comparison *fails* (non-zero exit of the command) only on a config mismatch or a changed
verdict: different digits at equal settings are what another machine gives, and are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gradprune.reporting.collect import collect_runs, load_metrics
from gradprune.reporting.formatting import fmt_size, fmt_sparsity
from gradprune.reporting.pairing import DEFAULT_NNZ_TOLERANCE, headline_pairs, verdict_text

NOT_RECORDED = "(not recorded)"
#: the columns that name a headline pair
PAIR_KEY = ["experiment", "ls_model", "ls_size", "ls_sparsity", "sd_model", "sd_size"]


@dataclass(frozen=True)
class RunDiff:
    """One run found on both sides."""

    key: tuple  # (experiment, model, size, target_sparsity, seed)
    metric: str
    yours: float
    committed: float
    config_hash: tuple[str | None, str | None]  # (yours, committed)
    commits: tuple[str | None, str | None]
    machine: dict[str, tuple[str, str]]  # field -> (yours, committed), differing fields only

    @property
    def difference(self) -> float:
        return self.yours - self.committed

    @property
    def config_matches(self) -> bool:
        return self.config_hash[0] is not None and self.config_hash[0] == self.config_hash[1]


@dataclass(frozen=True)
class VerdictDiff:
    """One headline pair of the committed runs: its verdict as committed and with yours."""

    pair: dict  # PAIR_KEY -> value
    committed: str
    with_yours: str
    gain: tuple[float, float]  # the pair's mean difference (positive: large-sparse better)
    yours_used: int  # how many of the pair's runs are yours

    @property
    def changed(self) -> bool:
        return self.committed != self.with_yours


@dataclass
class Comparison:
    yours_dir: Path
    committed_dir: Path
    runs: list[RunDiff] = field(default_factory=list)
    only_yours: list[tuple] = field(default_factory=list)
    only_committed: list[tuple] = field(default_factory=list)
    verdicts: list[VerdictDiff] = field(default_factory=list)

    @property
    def config_mismatches(self) -> list[RunDiff]:
        return [r for r in self.runs if not r.config_matches]

    @property
    def changed_verdicts(self) -> list[VerdictDiff]:
        return [v for v in self.verdicts if v.changed]

    @property
    def ok(self) -> bool:
        return not self.config_mismatches and not self.changed_verdicts


def run_key(data: dict) -> tuple:
    return (data["experiment"], str(data["model"]), float(data["size"]),
            round(float(data["target_sparsity"]), 6), int(data["seed"]))


def load_folder(folder: str | Path) -> dict[tuple, tuple[Path, dict]]:
    """Every ``metrics.json`` under ``folder``, by run identity."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of results")
    runs: dict[tuple, tuple[Path, dict]] = {}
    for path in sorted(folder.rglob("metrics.json")):
        data = load_metrics(path)
        key = run_key(data)
        if key in runs:
            raise ValueError(f"{path} and {runs[key][0]} are the same run ({describe(key)}): "
                             "compare one folder of results at a time")
        runs[key] = (path, data)
    return runs


def machine_fields(data: dict) -> dict[str, str]:
    """The provenance fields that say where and with what a run was computed, flattened."""
    prov = data.get("provenance") or {}
    out = {"device": str(prov.get("device", NOT_RECORDED)), "host": str(prov.get("host", NOT_RECORDED))}
    cpu = prov.get("cpu")
    out["cpu"] = NOT_RECORDED if cpu is None else "recorded"
    for key, value in (cpu or {}).items():
        if isinstance(value, dict):
            value = " ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
        out[f"cpu.{key}"] = str(value)
    for name, version in (prov.get("versions") or {}).items():
        out[f"versions.{name}"] = str(version)
    return out


def differing(yours: dict[str, str], committed: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Fields whose values differ; a block one side lacks (older provenance) is one entry."""
    out = {}
    for name in dict.fromkeys([*yours, *committed]):
        if name.startswith("cpu.") and NOT_RECORDED in (yours["cpu"], committed["cpu"]):
            continue  # one side predates the block: said once, by the "cpu" entry
        a, b = yours.get(name, NOT_RECORDED), committed.get(name, NOT_RECORDED)
        if a != b:
            out[name] = (a, b)
    return out


def compare(yours_dir: str | Path, committed_dir: str | Path,
            nnz_tolerance: float = DEFAULT_NNZ_TOLERANCE) -> Comparison:
    yours, committed = load_folder(yours_dir), load_folder(committed_dir)
    if not committed:
        raise ValueError(f"{committed_dir}: no metrics.json under it")
    result = Comparison(Path(yours_dir), Path(committed_dir))
    result.only_yours = sorted(set(yours) - set(committed))
    result.only_committed = sorted(set(committed) - set(yours))
    for key in sorted(set(yours) & set(committed)):
        (_, a), (_, b) = yours[key], committed[key]
        metric = b["task_metric"]
        if a["task_metric"] != metric:
            raise ValueError(f"{describe(key)}: your run reports {a['task_metric']!r}, the "
                             f"committed one {metric!r}: not the same experiment")
        pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
        result.runs.append(RunDiff(
            key, metric, float(a["metrics"][metric]), float(b["metrics"][metric]),
            (pa.get("config_hash"), pb.get("config_hash")), (pa.get("commit"), pb.get("commit")),
            differing(machine_fields(a), machine_fields(b))))
    result.verdicts = _verdicts(yours, committed, nnz_tolerance)
    return result


def _verdicts(yours: dict, committed: dict, nnz_tolerance: float) -> list[VerdictDiff]:
    committed_files = {k: p for k, (p, _) in committed.items()}
    mixed_files = {k: (yours[k][0] if k in yours else p) for k, p in committed_files.items()}
    before = headline_pairs(collect_runs(committed_files.values()), nnz_tolerance=nnz_tolerance)
    after = headline_pairs(collect_runs(mixed_files.values()), nnz_tolerance=nnz_tolerance)
    if before.empty:
        return []
    merged = before.merge(after, on=PAIR_KEY, how="left", suffixes=("", "_yours"),
                          validate="one_to_one")
    out = []
    for _, row in merged.iterrows():
        pair = {k: row[k] for k in PAIR_KEY}
        with_yours = (verdict_text({"verdict": row["verdict_yours"], "ahead": row["ahead_yours"]})
                      if isinstance(row["verdict_yours"], str) else "(pair gone)")
        used = sum(1 for k in yours if k in committed and _in_pair(k, pair))
        out.append(VerdictDiff(pair, verdict_text(row), with_yours,
                               (float(row["difference"]), float(row["difference_yours"])), used))
    return out


def _in_pair(key: tuple, pair: dict) -> bool:
    exp, model, size, sparsity, _ = key
    return exp == pair["experiment"] and (
        (model == pair["ls_model"] and size == float(pair["ls_size"])
         and math.isclose(sparsity, float(pair["ls_sparsity"])))
        or (model == pair["sd_model"] and size == float(pair["sd_size"]) and sparsity == 0.0))


# -- text --------------------------------------------------------------------------------------


def describe(key: tuple) -> str:
    exp, model, size, sparsity, seed = key
    return f"{exp} {model}-{fmt_size(size)} sparsity-{sparsity!r} seed-{seed}"  # as in folders


def _pair_text(pair: dict) -> str:
    return (f"{pair['experiment']}: {pair['ls_model']} {fmt_size(pair['ls_size'])} at "
            f"{fmt_sparsity(pair['ls_sparsity'])} vs {pair['sd_model']} {fmt_size(pair['sd_size'])}")


def _short(commit: str | None) -> str:
    return commit[:7] if commit else NOT_RECORDED


def format_comparison(c: Comparison) -> str:
    lines = [f"yours: {c.yours_dir}   committed: {c.committed_dir}",
             (f"{len(c.runs)} run(s) in both, {len(c.only_committed)} committed only, "
              f"{len(c.only_yours)} yours only"), ""]
    for r in c.runs:
        rel = r.difference / r.committed * 100 if r.committed else float("nan")
        lines.append(f"{describe(r.key)}  {r.metric}")
        lines.append(f"  yours {r.yours!r}  committed {r.committed!r}  "
                     f"difference {r.difference:+.6g} ({rel:+.4f} %)")
        hashes = (f"equal ({r.config_hash[0]})" if r.config_matches else
                  f"DIFFERENT (yours {r.config_hash[0] or NOT_RECORDED}, committed "
                  f"{r.config_hash[1] or NOT_RECORDED})")
        lines.append(f"  config hash: {hashes}; commit: yours {_short(r.commits[0])}, "
                     f"committed {_short(r.commits[1])}")
        if r.machine:
            lines.append("  differs: " + "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in
                                                   r.machine.items()))
        else:
            lines.append("  machine and versions: equal")
    if c.only_committed:
        lines += ["", "committed only (not in yours): "
                  + ", ".join(describe(k) for k in c.only_committed)]
    if c.only_yours:
        lines += ["", "yours only (not committed): " + ", ".join(describe(k) for k in c.only_yours)]
    lines += ["", ("verdicts (the committed runs; 'with yours': your value in place of each run "
                   "you reproduced):")]
    for v in c.verdicts:
        state = "CHANGED" if v.changed else "unchanged"
        lines.append(f"  {_pair_text(v.pair)}: {v.committed} -> {v.with_yours} ({state}; gain "
                     f"{v.gain[0]:+.4g} -> {v.gain[1]:+.4g}; {v.yours_used} of the pair's runs "
                     "yours)")
    if not c.verdicts:
        lines.append("  (the committed runs form no large-sparse / small-dense pair)")
    lines.append("")
    if c.ok:
        lines.append("OK: every config hash matches and every verdict is unchanged.")
    for r in c.config_mismatches:
        lines.append(f"FAIL: config mismatch: {describe(r.key)} (yours {r.config_hash[0]}, "
                     f"committed {r.config_hash[1]}): not the same settings, so not comparable")
    for v in c.changed_verdicts:
        lines.append(f"FAIL: verdict changed: {_pair_text(v.pair)}: {v.committed} -> "
                     f"{v.with_yours}")
    return "\n".join(lines) + "\n"



def run_compare(yours_dir: str | Path, committed_dir: str | Path,
                nnz_tolerance: float | None = None) -> int:
    """``gradprune compare``: print the comparison; 0 when every config hash matches and every
    verdict is unchanged, 1 otherwise, 2 when the folders cannot be compared."""
    import sys

    try:
        c = compare(yours_dir, committed_dir,
                    DEFAULT_NNZ_TOLERANCE if nnz_tolerance is None else nnz_tolerance)
    except (OSError, ValueError) as err:
        print(f"gradprune compare: {err}", file=sys.stderr)
        return 2
    print(format_comparison(c), end="")
    return 0 if c.ok else 1
