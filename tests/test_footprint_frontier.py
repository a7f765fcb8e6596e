"""The budget frontier: Pareto flags, best configuration per budget, crossover sparsity, and the
report files, from hand-made footprint/latency records of a `mobilenet-fmnist`-like experiment."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from gradprune.footprint import frontier as fr
from gradprune.footprint.formats import FORMATS
from gradprune.footprint.paths import experiment_outputs, footprint_targets
from gradprune.footprint.report import budget_display, write_experiment_report

EXP = "mobilenet-fmnist"
# (size, role, sparsity, nnz, top1, top1 int8, dense ms, sparse ms)
RUNS = [
    (1.0, "dense", 0.0, 4_000_000, 92.0, 91.9, 10.0, 30.0),
    (1.0, "large-sparse", 0.5, 2_000_000, 91.8, 91.7, 10.0, 16.0),
    (1.0, "large-sparse", 0.75, 1_000_000, 91.0, 90.5, 10.0, 9.0),
    (1.0, "large-sparse", 0.9, 400_000, 89.0, 88.0, 10.0, 4.0),
    (0.5, "small-dense", 0.0, 1_050_000, 90.0, 89.9, 3.0, 9.0),
    (0.25, "small-dense", 0.0, 300_000, 86.0, 85.0, 1.0, 3.0),
]


def _records(seeds=(0, 1)):
    """Metrics, footprints and latencies of RUNS for each seed (seed s adds 0.1 * s to top-1)."""
    metrics, footprints, latencies = [], [], []
    for seed, (size, role, sparsity, nnz, top1, top1_int8, dense_ms, sparse_ms) in (
            (s, r) for s in seeds for r in RUNS):
        top1, top1_int8 = top1 + 0.1 * seed, top1_int8 + 0.1 * seed
        base = {"experiment": EXP, "model": "mobilenet_v1", "size": size, "role": role,
                "target_sparsity": sparsity, "seed": seed, "nnz": nnz}
        metrics.append({**base, "family": "vision", "task_metric": "top1", "params": nnz,
                        "metrics": {"top1": top1, "top5": 99.0}})
        pruned = role == "large-sparse"
        formats = {}
        for fmt in FORMATS:
            int8 = fmt.endswith("-int8")
            width = 1 if int8 else 4
            dense_nnz = nnz / (1 - sparsity) if sparsity else nnz
            index = {"dense": 0, "bitmask": dense_nnz / 8, "csr-rel4": nnz * 0.6,
                     "csr": nnz * 2.1}[fmt.removesuffix("-int8")]
            values = (dense_nnz if fmt.startswith("dense") else nnz) * width
            formats[fmt] = {"bytes": int(values + index + 500), "bytes_values": int(values),
                            "bytes_indices": int(index),
                            "metrics": {"top1": top1_int8 if int8 else top1}}
        footprints.append({**base, "task_metric": "top1", "params": nnz, "formats": formats,
                           "pruned_tensors": ["x.weight"] if pruned else []})
        timings, speedup = [], []
        for b, factor in ((1, 1.0), (8, 4.0)):
            for mode, ms in (("dense", dense_ms), ("sparse", sparse_ms)):
                t = ms * factor / 1e3
                timings.append({"mode": mode, "batch": b, "inner": 1, "median_s": t,
                                "q25_s": 0.9 * t, "q75_s": 1.1 * t, "min_s": 0.8 * t,
                                "max_s": 1.3 * t, "samples_s": [t]})
            speedup.append({"batch": b, "median": dense_ms / sparse_ms,
                            "q25": 0.9 * dense_ms / sparse_ms, "q75": 1.1 * dense_ms / sparse_ms})
        latencies.append({**base, "rounds": 5, "timings": timings, "speedup": speedup})
    return metrics, footprints, latencies


def test_crossover_is_interpolated_in_log_speedup():
    x, note = fr.crossover([0.0, 0.5, 0.9], [0.5, 0.5, 2.0])
    assert x == pytest.approx(0.7) and "between 0.5" in note
    x, note = fr.crossover([0.5, 0.75], [0.2, 0.8])
    assert math.isnan(x) and "not reached up to 0.75" in note
    x, _ = fr.crossover([0.5, 0.9], [1.2, 3.0])
    assert x == 0.5
    # a speedup of exactly 1 is the crossover (sparse as fast as dense), at either position
    assert fr.crossover([0.5, 0.75], [0.5, 1.0])[0] == pytest.approx(0.75)
    assert fr.crossover([0.5, 0.75], [1.0, 2.0])[0] == 0.5


def test_pareto_flags_the_undominated_configurations():
    df = pd.DataFrame({"axis": ["a"] * 4, "cost": [1.0, 2.0, 2.0, 3.0],
                       "value": [50.0, 60.0, 55.0, 60.0]})
    assert fr.mark_pareto(df, higher_is_better=True)["pareto"].tolist() == [True, True, False, False]
    # lower is better (perplexity): the cheapest is best here, everything else dominated
    assert fr.mark_pareto(df, higher_is_better=False)["pareto"].tolist() == [True, False, False,
                                                                             False]


def test_unpruned_models_are_stored_dense_and_run_dense():
    configs = fr.configurations(*_records())
    small = configs[(configs["role"] == "small-dense") & (configs["size"] == 0.5)]
    by_axis = dict(zip(small["axis"], small["storage"]))
    assert by_axis["bytes:bitmask"] == "dense" and by_axis["bytes:csr-rel4-int8"] == "dense-int8"
    assert by_axis["latency:b1"] == "dense"  # a dense model runs dense even where CSR were faster
    ls90 = configs[(configs["sparsity"] == 0.9)]
    assert dict(zip(ls90["axis"], ls90["storage"]))["latency:b1"] == "sparse"
    assert dict(zip(ls90["axis"], ls90["cost"]))["latency:b1"] == pytest.approx(4.0)


def test_budget_verdicts_change_when_the_budget_is_bytes():
    configs = fr.configurations(*_records())
    budgets = fr.budget_table(configs, slack=0.05)
    row = budgets.set_index(["budget_size", "axis"])
    # NNZ budget of width 0.5 (1.05M): 75% sparse (1.0M) fits and beats it: the paper's headline.
    assert row.loc[(0.5, "nnz"), "verdict"] == "large-sparse wins"  # on both seeds
    assert row.loc[(0.5, "nnz"), "ls_sparsity"] == 0.75
    # In bitmask bytes the 75% model pays 4M/8 bytes of mask: only 90% fits, and loses.
    assert row.loc[(0.5, "bytes:bitmask"), "ls_sparsity"] == 0.9
    assert row.loc[(0.5, "bytes:bitmask"), "verdict"] == "small-dense wins"
    # Width 0.25 (300k NNZ): no pruned model is that small.
    assert row.loc[(0.25, "nnz"), "verdict"] == fr.NO_FIT
    holds = fr.holds_under_bytes(budgets).set_index("budget_size")
    assert not holds.loc[0.5, "same_as_nnz:bitmask"]
    display = budget_display(budgets).set_index("Budget of")
    assert display.loc["mobilenet_v1 0.5", "NNZ verdict under byte budgets"].startswith("changes in bit-mask fp32")
    assert display.loc["mobilenet_v1 0.25", "NNZ verdict under byte budgets"] == "holds"
    # one seed claims nothing, at any budget
    one = fr.budget_table(fr.configurations(*_records(seeds=(0,))), slack=0.05)
    assert set(one.loc[one["verdict"] != fr.NO_FIT, "verdict"]) == {"one seed"}


def test_report_writes_every_declared_output(tmp_path):
    metrics, footprints, latencies = _records()
    files = {}
    for kind, records in (("metrics", metrics), ("footprint", footprints),
                          ("latency", latencies)):
        files[kind] = []
        for i, rec in enumerate(records):
            p = tmp_path / "runs" / f"{kind}-{i}.json"
            p.parent.mkdir(exist_ok=True)
            p.write_text(json.dumps(rec))
            files[kind].append(p)
    results = tmp_path / "results"
    written = write_experiment_report(EXP, files["metrics"], files["footprint"],
                                      files["latency"], results, slack=0.05)
    declared = {tmp_path / p for p in experiment_outputs(EXP).values()}
    assert set(written) == declared and all(p.stat().st_size > 0 for p in declared)
    table = pd.read_csv(results / "tables" / f"{EXP}_footprint.csv")
    assert list(table.columns) == ["model", "size", "sparsity", "seed", "format", "bytes",
                                   "metric", "value"]
    assert len(table) == 2 * len(RUNS) * len(FORMATS)  # two seeds
    lat = pd.read_csv(results / "tables" / f"{EXP}_latency.csv")
    assert len(lat) == 2 * len(RUNS) * 2 * 2 and lat["speedup"].notna().sum() == 2 * len(RUNS) * 2
    cross = pd.read_csv(results / "tables" / f"{EXP}_crossover.csv")
    b1 = cross[cross["batch"] == 1].iloc[0]
    assert 0.5 < b1["crossover_sparsity"] < 0.75  # speedup 0.625 at 50%, 1.11 at 75%
    assert "*" in (results / "tables" / f"{EXP}_frontier.md").read_text()


def test_targets_name_csv_tables_and_png_figures_of_every_experiment():
    config = {"experiments": {EXP: {}, "lstm-ptb": {}}}
    targets = footprint_targets(config)
    assert "results/tables/lstm-ptb_budget.csv" in targets
    assert f"results/figures/{EXP}_frontier.png" in targets
    assert not any(t.endswith((".md", ".tex", ".pdf")) for t in targets)


def test_default_target_builds_the_footprint_and_its_settings_never_retrain():
    from tests.workflow_helpers import load_preset

    from gradprune.config import plan_runs, run_settings, validate_config
    from gradprune.workflow import report_targets

    config = validate_config(load_preset("test"))
    assert set(footprint_targets(config)) <= set(report_targets(config))
    changed = {**config, "footprint": {**config["footprint"], "latency_rounds": 99}}
    # training and evaluation jobs get run_settings as params: a change would retrain them
    assert all(run_settings(changed, r) == run_settings(config, r) for r in plan_runs(config))


def test_an_experiment_without_small_dense_models_has_an_empty_budget_table():
    metrics, footprints, latencies = (
        [r for r in recs if r["role"] != "small-dense"] for recs in _records())
    budgets = fr.budget_table(fr.configurations(metrics, footprints, latencies), slack=0.05)
    assert budgets.empty and list(budgets.columns) == fr.BUDGET_COLUMNS
    assert budget_display(budgets).empty
    assert fr.crossover_table(fr.latency_rows([])).empty


def _configs(rows, metric="top1"):
    """A configurations table as fr.configurations builds it, by hand: (role, sparsity, cost,
    {seed: value}) per configuration of one axis."""
    return pd.DataFrame([
        {"axis": "nnz", "model": "m", "size": 1.0 if role != "small-dense" else 0.5, "role": role,
         "sparsity": sparsity, "storage": "", "cost": cost,
         "value": sum(by_seed.values()) / len(by_seed), "n_seeds": len(by_seed),
         "metric": metric, "by_seed": by_seed}
        for role, sparsity, cost, by_seed in rows])


# The budget is the small-dense cost, 1000; slack 0.25: a configuration fits when its cost is at
# most 1250 (exact in binary). Hand-worked: which large-sparse model the row picks.
@pytest.mark.parametrize("cost, fits", [(1000.0, True), (1100.0, True), (1250.0, True),
                                        (1250.5, False)])
def test_a_budget_admits_costs_up_to_the_slack_and_no_further(cost, fits):
    configs = _configs([("small-dense", 0.0, 1000.0, {0: 80.0, 1: 80.5}),
                        ("large-sparse", 0.9, cost, {0: 85.0, 1: 85.5}),
                        ("large-sparse", 0.95, 500.0, {0: 70.0, 1: 70.5})])
    (row,) = fr.budget_table(configs, slack=0.25, tolerance=0.1).to_dict("records")
    if fits:  # the better large-sparse model (90 %) fits, and wins on both seeds by 5 > 0.35
        assert (row["ls_sparsity"], row["best_sparsity"]) == (0.9, 0.9)
        assert row["verdict"] == "large-sparse wins" and row["difference"] == 5.0
    else:  # only the 95 % model fits, and loses
        assert (row["ls_sparsity"], row["best_role"]) == (0.95, "small-dense")
        assert row["verdict"] == "small-dense wins" and row["difference"] == -10.0
    assert row["slack"] == 0.25 and row["budget"] == 1000.0


def test_the_best_configuration_under_a_budget_follows_the_metrics_direction():
    # perplexity: lower is better; the 90 % model (ppl 90) beats the small-dense one (100)
    rows = [("small-dense", 0.0, 1000.0, {0: 100.0, 1: 101.0}),
            ("large-sparse", 0.9, 900.0, {0: 90.0, 1: 91.0}),
            ("large-sparse", 0.95, 500.0, {0: 120.0, 1: 121.0})]
    (row,) = fr.budget_table(_configs(rows, "test_perplexity"), slack=0.0).to_dict("records")
    assert (row["best_sparsity"], row["ls_sparsity"]) == (0.9, 0.9)
    assert row["verdict"] == "large-sparse wins" and row["difference"] == 10.0
    # with no large-sparse model under the budget
    (row,) = fr.budget_table(_configs(rows[:1] + [("large-sparse", 0.9, 1001.0, {0: 1.0})],
                                      "test_perplexity"), slack=0.0).to_dict("records")
    assert row["verdict"] == fr.NO_FIT and row["best_role"] == "small-dense"


def test_equal_configurations_do_not_dominate_each_other():
    df = pd.DataFrame({"axis": ["a"] * 3, "cost": [1.0, 1.0, 1.0], "value": [5.0, 5.0, 4.0]})
    assert fr.mark_pareto(df, higher_is_better=True)["pareto"].tolist() == [True, True, False]
    assert fr.mark_pareto(df, higher_is_better=False)["pareto"].tolist() == [False, False, True]
