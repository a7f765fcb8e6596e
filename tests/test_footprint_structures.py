"""Structure comparisons: unstructured and block-sparse variants of one LM experiment against the
same small-dense models, from hand-made records whose verdicts are worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from gradprune.footprint import frontier as fr
from gradprune.footprint import structures as st
from gradprune.footprint.paths import comparison_inputs, comparison_outputs, footprint_targets
from gradprune.reporting.pairing import LS_WINS, SD_WINS

# experiment -> [(size, role, sparsity, nnz, ppl, dense ms, sparse ms)] at batch 1
RUNS = {
    "lm": [(256, "large-sparse", 0.9, 630_000, 237.0, 2.0, 1.13),
           (30, "small-dense", 0.0, 625_000, 292.0, 0.15, 0.5)],
    "lm-b4": [(256, "large-sparse", 0.9, 630_000, 245.0, 2.0, 0.60),
              (30, "small-dense", 0.0, 625_000, 292.0, 0.15, 0.5)],
    "lm-b16": [(256, "large-sparse", 0.9, 630_000, 250.0, 2.0, 0.155),
               (30, "small-dense", 0.0, 625_000, 292.0, 0.15, 0.5)],
    "lm-b32": [(256, "large-sparse", 0.9, 630_000, 300.0, 2.0, 0.10),
               (30, "small-dense", 0.0, 625_000, 292.0, 0.15, 0.5)],
}
BLOCKS = {"lm": None, "lm-b4": [4, 4], "lm-b16": [16, 16], "lm-b32": [32, 32]}


def records(experiment, seeds=(0, 1)):
    metrics, footprints, latencies = [], [], []
    for seed in seeds:
        for size, role, sparsity, nnz, ppl, dense_ms, sparse_ms in RUNS[experiment]:
            base = {"experiment": experiment, "model": "lstm_lm", "size": size, "role": role,
                    "target_sparsity": sparsity, "seed": seed, "nnz": nnz}
            value = ppl + 0.5 * seed
            metrics.append({**base, "task_metric": "perplexity", "params": nnz,
                            "metrics": {"perplexity": value}})
            formats = {f: {"bytes": 1000, "bytes_values": 900, "bytes_indices": 100,
                           "metrics": {"perplexity": value}} for f in fr.FORMATS}
            blocks = BLOCKS[experiment]
            extra = {"blocks": {"w": blocks}} if blocks else {}
            footprints.append({**base, "task_metric": "perplexity", "params": nnz,
                               "formats": formats, **extra,
                               "pruned_tensors": ["w"] if role == "large-sparse" else []})
            timings = [{"mode": m, "batch": 1, "inner": 1, "median_s": ms / 1e3,
                        "q25_s": ms / 1e3, "q75_s": ms / 1e3, "min_s": ms / 1e3,
                        "max_s": ms / 1e3, "samples_s": [ms / 1e3]}
                       for m, ms in (("dense", dense_ms), ("sparse", sparse_ms))]
            latencies.append({**base, "rounds": 1, "timings": timings, **extra,
                              "speedup": [{"batch": 1, "median": dense_ms / sparse_ms,
                                           "q25": 1, "q75": 1}]})
    return metrics, footprints, latencies


def test_variants_are_labelled_by_structure_and_the_shared_small_dense_run_kept_once():
    metrics, footprints, latencies = st.combine([records("lm"), records("lm-b4")])
    assert sorted({(m["model"], m["role"]) for m in metrics}) == [
        ("lstm_lm", "large-sparse"), ("lstm_lm", "small-dense"), ("lstm_lm [4x4]", "large-sparse")]
    assert len(metrics) == 6 and len(footprints) == 6 and len(latencies) == 6  # 3 configs x 2 seeds
    assert all(d["experiment"] == "lm" for d in metrics if d["role"] == "small-dense")


def test_the_latency_budget_verdicts_follow_the_rule():
    """At batch 1 the 30-unit model takes 0.15 ms (dense; its sparse mode is slower): the budget
    with 5% slack is 0.1575 ms. Unstructured (1.13 ms) and [4x4] (0.60 ms) do not fit; [16x16]
    (0.155 ms) fits and wins (250 against 292 perplexity on both seeds); [32x32] (0.10 ms) fits
    and loses (300). By NNZ every variant is matched (630k against 625k) and judged by perplexity."""
    sets = [records(e) for e in ("lm", "lm-b4", "lm-b16", "lm-b32")]
    configs = fr.configurations(*st.combine(sets))
    table = st.comparison_table(configs, slack=0.05).set_index(["axis", "structure"])
    lat = table.loc["latency:b1"]
    assert lat.loc["lstm_lm", "verdict"] == fr.NO_FIT and not lat.loc["lstm_lm", "fits"]
    assert lat.loc["lstm_lm [4x4]", "verdict"] == fr.NO_FIT
    assert lat.loc["lstm_lm [16x16]", "verdict"] == LS_WINS and lat.loc["lstm_lm [16x16]", "fits"]
    assert lat.loc["lstm_lm [16x16]", "difference"] == pytest.approx(292.0 - 250.0)
    assert lat.loc["lstm_lm [32x32]", "verdict"] == SD_WINS
    assert lat.loc["lstm_lm [16x16]", "budget"] == pytest.approx(0.15)
    nnz = table.loc["nnz"]
    assert list(nnz["verdict"]) == [LS_WINS, LS_WINS, LS_WINS, SD_WINS]
    assert set(nnz["budget_size"]) == {30.0}


def test_the_comparison_writes_its_table_and_figure(tmp_path):
    import json

    files = {"metrics": [], "footprint": [], "latency": []}
    for e in ("lm", "lm-b16"):
        for kind, recs in zip(files, records(e)):
            for i, rec in enumerate(recs):
                path = tmp_path / "in" / f"{e}-{kind}-{i}.json"
                path.parent.mkdir(exist_ok=True)
                path.write_text(json.dumps(rec))
                files[kind].append(str(path))
    written = st.write_structure_comparison("blocks", ["lm", "lm-b16"], files["metrics"],
                                            files["footprint"], files["latency"], tmp_path, 0.05)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    expected = sorted(p.removeprefix("results/") for p in comparison_outputs("blocks").values())
    assert names == expected
    table = pd.read_csv(tmp_path / "tables/structures/blocks.csv")
    assert set(table["structure"]) == {"lstm_lm", "lstm_lm [16x16]"}
    assert "no large-sparse fits" in (tmp_path / "tables/structures/blocks.md").read_text()


def test_the_sweep_gives_one_crossover_row_per_kernel():
    """Sweep points of a CSR and a BSR run: crossover interpolated in log speedup between the
    points around 1 (oracle: 0.8 -> 0.8x, 0.9 -> 1.25x: log-midpoint 0.85)."""
    _, _, lat = records("lm", seeds=(0,))
    ls = next(d for d in lat if d["role"] == "large-sparse")
    csr = {**ls, "sweep": {"sparsities": [0.8, 0.9], "speedup": [
        {"sparsity": 0.8, "batch": 1, "median": 0.8, "q25": 0.8, "q75": 0.8},
        {"sparsity": 0.9, "batch": 1, "median": 1.25, "q25": 1.25, "q75": 1.25}]}}
    bsr = {**csr, "blocks": {"w": [4, 4]}, "sweep": {"sparsities": [0.5], "speedup": [
        {"mode": "bsr", "sparsity": 0.5, "batch": 1, "median": 1.5, "q25": 1.5, "q75": 1.5},
        {"mode": "sparse", "sparsity": 0.5, "batch": 1, "median": 0.5, "q25": 0.5, "q75": 0.5}]}}
    table = fr.crossover_table(fr.latency_rows([ls]), [csr, bsr]).set_index("source")
    assert table.loc["sweep, CSR", "crossover_sparsity"] == pytest.approx(0.85)
    assert "already faster" in table.loc["sweep, BSR 4x4", "note"]
    assert "not reached" in table.loc["sweep, CSR, 4x4 masks", "note"]
    assert table.loc[fr.RUNS_SOURCE, "crossover_sparsity"] == pytest.approx(0.9)
    assert math.isnan(table.loc["sweep, BSR 4x4", "speedup@0.8"])


def test_the_default_target_builds_every_comparison():
    config = {"experiments": {"lm": {}}, "structure_comparisons": {"lm-blocks": ["lm"]},
              "seeds": [0]}
    targets = footprint_targets({**config, "experiments": {}})
    assert "results/tables/structures/lm-blocks.csv" in targets
    assert "results/figures/structures/lm-blocks.png" in targets
    assert not any(t.endswith((".md", ".tex", ".pdf")) for t in targets)
    assert comparison_inputs({**config, "experiments": {}}, "lm-blocks") == {
        "metrics": [], "footprint": [], "latency": []}


def test_a_block_run_is_timed_its_fastest_way_dense_csr_or_bsr():
    metrics, footprints, latencies = records("lm-b4", seeds=(0,))
    ls = next(d for d in latencies if d["role"] == "large-sparse")
    t = 0.2e-3  # BSR faster than CSR (0.60 ms) and dense (2.0 ms)
    ls["timings"].append({"mode": "bsr", "batch": 1, "inner": 1, "median_s": t, "q25_s": t,
                          "q75_s": t, "min_s": t, "max_s": t, "samples_s": [t]})
    ls["speedup_bsr"] = [{"batch": 1, "median": 10.0, "q25": 10.0, "q75": 10.0}]
    configs = fr.configurations(metrics, footprints, latencies)
    row = configs[(configs["axis"] == "latency:b1") & (configs["role"] == "large-sparse")].iloc[0]
    assert row["storage"] == "bsr" and row["cost"] == pytest.approx(0.2)
    rows = fr.latency_rows(latencies)
    assert rows[rows["mode"] == "bsr"]["speedup"].tolist() == [10.0]
    cross = fr.crossover_table(rows).set_index("source")
    assert cross.loc[f"{fr.RUNS_SOURCE}, BSR", "speedup@0.9"] == 10.0
