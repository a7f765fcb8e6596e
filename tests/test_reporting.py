"""gradprune.reporting on small synthetic runs (fake metrics.json / CSVs in tmp_path)."""

from __future__ import annotations

import json
import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from gradprune.reporting import (
    collect_runs,
    comparison_table,
    experiment_table,
    headline_pairs,
    load_reference,
    metric_info,
    reference_path,
    write_experiment_figures,
    write_run_figures,
    write_tables,
)
from gradprune.reporting.pairing import (
    DEFAULT_NNZ_TOLERANCE,
    LS,
    LS_WINS,
    NO_PAIRED_SEEDS,
    NOT_SEPARATED,
    ONE_SEED,
    SD,
    SD_WINS,
    TIE,
    UNMATCHED,
    headline_display,
    judge,
    nnz_matched,
    verdict_counts,
    verdict_summary,
)
from gradprune.reporting.reference import CONFIDENCE_LEVELS

SCHEDULE = {"initial_sparsity": 0.0, "final_sparsity": 0.9, "begin_step": 20, "frequency": 10,
            "n_updates": 6}


def write_run(root, experiment="mobilenet-imagenet", model="mobilenet_v1", size=1.0,
              role="large-sparse", sparsity=0.9, seed=0, nnz=460_000, params=4_210_000,
              metrics=None, family=None, task_metric=None, steps=120):
    metrics = metrics if metrics is not None else {"top1": 60.0, "top5": 84.0}
    task_metric = task_metric or next(iter(metrics))
    family = family or ("lm" if "perplexity" in task_metric else "vision")
    pruning = dict(SCHEDULE, final_sparsity=sparsity) if role == "large-sparse" else None
    data = {
        "experiment": experiment, "family": family, "task_metric": task_metric, "model": model,
        "size": size, "role": role, "target_sparsity": sparsity if role == "large-sparse" else 0.0,
        "seed": seed, "nnz": nnz, "params": params, "model_sparsity": 1 - nnz / params,
        "metrics": metrics, "train": {"steps": steps, "wall_time_s": 1.0},
        "provenance": {"config_hash": "abc", "config": {"pruning": pruning}, "commit": "x",
                       "dirty": False, "versions": {}, "device": "cpu", "host": "h",
                       "started": "", "finished": ""},
    }
    d = root / f"{experiment}_{model}_{size}_{role}_{sparsity}_{seed}"
    d.mkdir(parents=True)
    path = d / "metrics.json"
    path.write_text(json.dumps(data))
    return path


def mobilenet_runs(root, seeds=(0,), ls_top1=62.0, sd_top1=50.0, nnz_50=2_130_000):
    """MobileNet: dense 1.0, large-sparse 1.0 @ 50/90 %, small-dense 0.25/0.5/0.75 (2.59M).
    ``nnz_50``: NNZ of the 50 % model (above 2.85M its pair with width 0.75 is unmatched)."""
    paths = []
    for seed in seeds:
        off = 0.1 * seed
        paths.append(write_run(root, role="dense", sparsity=0.0, seed=seed, nnz=4_210_000,
                               metrics={"top1": 70.0 + off, "top5": 89.0}))
        paths.append(write_run(root, sparsity=0.5, seed=seed, nnz=nnz_50,
                               metrics={"top1": 69.0 + off, "top5": 89.0}))
        paths.append(write_run(root, sparsity=0.9, seed=seed, nnz=460_000,
                               metrics={"top1": ls_top1 + off, "top5": 84.0}))
        for size, nnz, top1 in [(0.25, 470_000, sd_top1), (0.5, 1_320_000, 63.0),
                                (0.75, 2_590_000, 68.0)]:
            paths.append(write_run(root, size=size, role="small-dense", sparsity=0.0, seed=seed,
                                   nnz=nnz, params=nnz, metrics={"top1": top1 + off, "top5": 80.0}))
    return paths


def ptb_runs(root, ls_ppl=80.0, sd_ppl=84.0, seeds=(0,)):
    paths = []
    for seed in seeds:
        kw = {"experiment": "lstm-ptb", "model": "lstm_lm", "seed": seed}
        paths.append(write_run(root, size=1500, role="dense", sparsity=0.0, nnz=66_000_000,
                               params=66_000_000, metrics={"test_perplexity": 78.0}, **kw))
        paths.append(write_run(root, size=1500, role="large-sparse", sparsity=0.9,
                               nnz=6_600_000, params=66_000_000,
                               metrics={"test_perplexity": ls_ppl}, **kw))
        paths.append(write_run(root, size=650, role="small-dense", sparsity=0.0, nnz=19_800_000,
                               params=19_800_000, metrics={"test_perplexity": 83.0}, **kw))
        paths.append(write_run(root, size=200, role="small-dense", sparsity=0.0, nnz=6_600_000,
                               params=6_600_000, metrics={"test_perplexity": sd_ppl}, **kw))
    return paths


# ------------------------------------------------------------------ directions, collect
def test_metric_directions_single_table():
    assert metric_info("top1").higher_is_better and metric_info("bleu").higher_is_better
    assert not metric_info("test_perplexity").higher_is_better
    assert not metric_info("val_perplexity").higher_is_better
    with pytest.raises(KeyError):
        metric_info("mystery")


def test_collect_flattens_metrics(tmp_path):
    runs = collect_runs(mobilenet_runs(tmp_path))
    assert len(runs) == 6
    assert {"metric.top1", "metric.top5", "nnz_millions", "pruning.final_sparsity"} <= set(
        runs.columns)
    assert runs.loc[runs["role"] == "dense", "nnz_millions"].item() == pytest.approx(4.21)


# ------------------------------------------------------------------ pairing / headline
def test_pairing_picks_nearest_nnz(tmp_path):
    pairs = headline_pairs(collect_runs(mobilenet_runs(tmp_path)))
    by_sparsity = pairs.set_index("ls_sparsity")
    assert by_sparsity.loc[0.9, "sd_size"] == 0.25      # 0.46M vs 0.47M
    assert by_sparsity.loc[0.5, "sd_size"] == 0.75      # 2.13M: 2.59M nearer than 1.32M (ratio)
    assert by_sparsity.loc[0.9, "difference"] == pytest.approx(12.0)
    # one seed: the comparison is reported, no verdict is claimed
    assert by_sparsity.loc[0.9, "verdict"] == ONE_SEED and by_sparsity.loc[0.9, "ahead"] == LS


def test_tie_in_distance_goes_to_smaller_model(tmp_path):
    paths = [write_run(tmp_path, sparsity=0.5, nnz=2_000_000),
             write_run(tmp_path, size=0.5, role="small-dense", sparsity=0.0, nnz=1_000_000),
             write_run(tmp_path, size=0.75, role="small-dense", sparsity=0.0, nnz=4_000_000)]
    pairs = headline_pairs(collect_runs(paths))
    assert pairs["sd_size"].item() == 0.5


def test_verdict_follows_the_numbers_over_two_seeds(tmp_path):
    row = lambda p: p[p["ls_sparsity"] == 0.9].iloc[0]
    a = headline_pairs(collect_runs(mobilenet_runs(tmp_path / "a", (0, 1), ls_top1=62, sd_top1=50)))
    b = headline_pairs(collect_runs(mobilenet_runs(tmp_path / "b", (0, 1), ls_top1=50, sd_top1=62)))
    assert row(a)["verdict"] == LS_WINS and row(b)["verdict"] == SD_WINS
    assert row(b)["difference"] == pytest.approx(-12.0) and row(b)["n_paired_seeds"] == 2
    # within the tie tolerance (0.1 top-1 points) on every seed: not separated, and "tie" ahead
    c = headline_pairs(collect_runs(mobilenet_runs(tmp_path / "c", (0, 1), ls_top1=50.05,
                                                   sd_top1=50)))
    assert row(c)["verdict"] == NOT_SEPARATED and row(c)["ahead"] == TIE


def test_perplexity_lower_is_better(tmp_path):
    pairs = headline_pairs(collect_runs(ptb_runs(tmp_path, ls_ppl=80.0, sd_ppl=84.0, seeds=(0, 1))))
    r = pairs.iloc[0]
    assert r["sd_size"] == 200 and not r["higher_is_better"]
    assert r["difference"] == pytest.approx(4.0) and r["verdict"] == LS_WINS
    flipped = headline_pairs(collect_runs(ptb_runs(tmp_path / "f", ls_ppl=90.0, sd_ppl=84.0,
                                                   seeds=(0, 1))))
    assert flipped.iloc[0]["verdict"] == SD_WINS and flipped.iloc[0]["difference"] < 0


def test_judge_wins_only_beyond_the_spread():
    sd = {0: 60.0, 1: 61.0, 2: 62.0}                      # sd 1.0 exactly
    win = judge({0: 61.5, 1: 62.5, 2: 63.5}, sd, higher_is_better=True, tie_tolerance=0.1)
    assert win.verdict == LS_WINS and win.difference == 1.5 and win.spread == 1.0
    # a mean difference equal to the spread does not separate the models
    edge = judge({0: 61.0, 1: 62.0, 2: 63.0}, sd, higher_is_better=True, tie_tolerance=0.1)
    assert (edge.difference, edge.spread) == (1.0, 1.0) and edge.verdict == NOT_SEPARATED
    # spread is the larger side's sd: every seed wins, but the mean (6.5) is inside 7.07
    noisy = judge({0: 62.0, 1: 52.0}, {0: 50.0, 1: 51.0}, higher_is_better=True, tie_tolerance=0.1)
    assert noisy.spread == pytest.approx(np.std([62, 52], ddof=1)) and noisy.verdict == NOT_SEPARATED
    # every seed must win: a mean (9.5) beyond the spread (7.78) with one losing seed is not enough
    split = judge({0: 70.0, 1: 60.0}, {0: 50.0, 1: 61.0}, higher_is_better=True, tie_tolerance=0.1)
    assert split.difference > split.spread and split.seed_outcomes == {0: LS, 1: SD}
    assert split.verdict == NOT_SEPARATED
    # perplexity: lower is better, the small-dense model wins symmetrically
    sd_win = judge({0: 90.0, 1: 91.0}, {0: 84.0, 1: 84.5}, higher_is_better=False,
                   tie_tolerance=0.5)
    assert sd_win.difference == pytest.approx(-6.25) and sd_win.verdict == SD_WINS


# Both sides of the rule at its two thresholds, for both metric directions. Three seeds on each
# side with values 1 apart: each side's sample sd (ddof=1) is exactly 1.0, so the spread is 1.0;
# the small-dense side sits at 60, 61, 62 and the large-sparse side is shifted by ``gap`` (in the
# metric's better direction when positive). Hand-worked: mean difference = gap, every seed's
# difference = gap; "wins" needs |gap| > tie tolerance (0.25) on every seed and |gap| > 1.0. Every
# value is exact in binary, so "at" a threshold is exactly at it.
JUDGE_EDGES = [
    (1.5, LS_WINS),          # beyond the spread
    (1.0, NOT_SEPARATED),    # at the spread: a mean difference equal to it does not separate
    (0.5, NOT_SEPARATED),    # every seed wins beyond the tie tolerance, the mean is inside the spread
    (0.25, NOT_SEPARATED),   # at the tie tolerance: every seed a tie
    (0.0, NOT_SEPARATED),
    (-0.25, NOT_SEPARATED),
    (-0.5, NOT_SEPARATED),   # every seed loses beyond the tolerance, the mean is inside the spread
    (-1.0, NOT_SEPARATED),
    (-1.5, SD_WINS),
]


@pytest.mark.parametrize("higher_is_better", [True, False])
@pytest.mark.parametrize("gap, verdict", JUDGE_EDGES)
def test_judge_at_and_around_its_thresholds_on_both_sides(gap, verdict, higher_is_better):
    sd = {0: 60.0, 1: 61.0, 2: 62.0}
    shift = gap if higher_is_better else -gap  # a lower perplexity is better
    ls = {s: v + shift for s, v in sd.items()}
    j = judge(ls, sd, higher_is_better=higher_is_better, tie_tolerance=0.25)
    assert j.verdict == verdict, (gap, j)
    assert j.difference == gap and j.spread == 1.0
    expected_outcome = TIE if abs(gap) <= 0.25 else (LS if gap > 0 else SD)
    assert set(j.seed_outcomes.values()) == {expected_outcome}
    assert j.ahead == expected_outcome


def test_the_spread_is_the_larger_sample_sd_whichever_side_holds_it():
    quiet, noisy = {0: 70.0, 1: 70.0, 2: 70.0}, {0: 60.0, 1: 61.0, 2: 62.0}  # sds 0 and 1 (ddof=1)
    for ls, sd in ((quiet, noisy), (noisy, quiet)):
        assert judge(ls, sd, higher_is_better=True, tie_tolerance=0.25).spread == 1.0
    # two seeds 2 apart: sample sd sqrt(2) (the population sd would be 1)
    assert judge({0: 80.0, 1: 80.0}, {0: 60.0, 1: 62.0}, True, 0.25).spread == pytest.approx(
        math.sqrt(2))


def test_judge_ties_one_seed_and_unpaired_seeds():
    # a seed whose difference equals the tie tolerance is a tie, not a win
    tie = judge({0: 50.5, 1: 51.5}, {0: 50.0, 1: 51.0}, higher_is_better=True, tie_tolerance=0.5)
    assert tie.seed_outcomes == {0: TIE, 1: TIE} and tie.verdict == NOT_SEPARATED
    assert tie.ahead == TIE
    one = judge({0: 62.0}, {0: 50.0}, higher_is_better=True, tie_tolerance=0.1)
    assert one.verdict == ONE_SEED and one.ahead == LS and math.isnan(one.spread)
    assert one.difference == 12.0
    # seeds on one side only take no part: one common seed is still "one seed" ...
    lopsided = judge({0: 62.0, 1: 63.0}, {0: 50.0}, higher_is_better=True, tie_tolerance=0.1)
    assert lopsided.verdict == ONE_SEED and lopsided.unpaired == {LS: [1], SD: []}
    # ... a bad extra large-sparse seed does not spoil the verdict of the paired ones ...
    extra = judge({0: 62.0, 1: 62.2, 2: 10.0}, {0: 50.0, 1: 50.1}, True, 0.1)
    assert extra.verdict == LS_WINS and extra.n_paired == 2 and extra.unpaired[LS] == [2]
    # ... and no common seed at all gives no comparison
    none = judge({1: 62.0}, {0: 50.0}, higher_is_better=True, tie_tolerance=0.1)
    assert none.verdict == NO_PAIRED_SEEDS and math.isnan(none.difference)


def test_nnz_tolerance_edges():
    assert nnz_matched(1_100_000, 1_000_000, 0.10)  # exactly 10 % more: inside
    assert not nnz_matched(1_100_001, 1_000_000, 0.10)
    # one-sided: a small-dense partner with more NNZ handicaps only the sparse model
    assert nnz_matched(1_000_000, 2_000_000, 0.10)
    assert nnz_matched(5, 5, 0.0) and not nnz_matched(6, 5, 0.0) and nnz_matched(5, 6, 0.0)
    with pytest.raises(ValueError, match="nnz_tolerance"):
        headline_pairs(pd.DataFrame(), nnz_tolerance=-0.1)


def test_unmatched_pairs_are_shown_flagged_and_excluded(tmp_path):
    # a 50 % model of 2.98M NNZ against width 0.75's 2.59M: 1.15x the partner's NNZ
    runs = collect_runs(mobilenet_runs(tmp_path, seeds=(0, 1), nnz_50=2_980_000))
    pairs = headline_pairs(runs)
    half = pairs[pairs["ls_sparsity"] == 0.5].iloc[0]
    assert not half["matched"] and half["verdict"] == UNMATCHED
    assert half["sd_size"] == 0.75 and half["difference"] == pytest.approx(1.0)  # still shown
    assert verdict_counts(pairs)[LS_WINS] == 1 and sum(verdict_counts(pairs).values()) == 1
    assert "unmatched NNZ (excluded): 1" in verdict_summary(pairs)
    disp = headline_display(pairs)
    assert "unmatched" in disp.loc[pairs.index[pairs["ls_sparsity"] == 0.5][0], "Verdict"]
    # a looser tolerance admits the pair, and its verdict counts (69 vs 68 on both seeds)
    loose = headline_pairs(runs, nnz_tolerance=0.25)
    assert loose["matched"].all() and verdict_counts(loose)[LS_WINS] == 2


def test_nnz_tolerance_config_default_and_no_retraining():
    from tests.workflow_helpers import load_preset

    from gradprune.config import plan_runs, run_settings, validate_config

    config = validate_config(load_preset("mini"))
    assert config["headline"]["nnz_tolerance"] == DEFAULT_NNZ_TOLERANCE
    # the tolerance only re-pairs reports: a training job's settings (Snakemake reruns a job
    # whose params change) must not carry it
    looser = validate_config({**load_preset("mini"), "headline": {"nnz_tolerance": 0.5}})
    assert all(run_settings(looser, r) == run_settings(config, r) for r in plan_runs(config))


# ------------------------------------------------------------------ tables, paper comparison
def test_experiment_table_mean_std(tmp_path):
    runs = collect_runs(mobilenet_runs(tmp_path, seeds=(0, 1)))
    num, disp = experiment_table(runs, "mobilenet-imagenet")
    assert list(disp.columns[:4]) == ["Model", "Width", "Sparsity", "NNZ (M)"]
    assert "Seeds" in disp and (num["n_seeds"] == 2).all()
    dense = num[(num["size"] == 1.0) & (num["sparsity"] == 0.0)].iloc[0]
    assert dense["top1"] == pytest.approx(70.05) and dense["top1_std"] == pytest.approx(
        np.std([70.0, 70.1], ddof=1))
    assert "±" in disp.loc[0, "top1"]


def test_shipped_reference_keeps_confidence():
    ref = load_reference()
    assert reference_path().name == "paper_reference.csv"
    assert set(ref["confidence"]) <= set(CONFIDENCE_LEVELS)
    row = ref[(ref["experiment"] == "mobilenet-imagenet") & (ref["sparsity"] == 0.9)
              & (ref["metric"] == "top1")].iloc[0]
    assert row["value"] == 61.8 and row["confidence"] == "corroborated"


def test_comparison_matches_paper_rows(tmp_path):
    runs = collect_runs(mobilenet_runs(tmp_path) + ptb_runs(tmp_path))
    num, disp = comparison_table(runs, "mobilenet-imagenet", compare_with_paper=True)
    r = num[(num["model"] == "mobilenet_v1") & (num["size"] == 1.0) & (num["sparsity"] == 0.9)]
    top1 = r[r["metric"] == "top1"].iloc[0]
    assert top1["paper"] == 61.8 and top1["reproduced"] == 62.0
    assert top1["difference"] == pytest.approx(0.2) and top1["confidence"] == "corroborated"
    assert top1["coverage"] == "reproduced"
    assert r[r["metric"] == "top5"].iloc[0]["confidence"] == "recollection"
    # a paper row not reproduced here (95 % sparse) stays, with no reproduced value, under the
    # experiment's model name
    missing = num[num["sparsity"] == 0.95].iloc[0]
    assert missing["paper"] == 53.6 and pd.isna(missing["reproduced"])
    assert missing["model"] == "mobilenet_v1" and missing["coverage"] == "no result"
    assert {"Paper", "Confidence", "Difference", "Coverage"} <= set(disp.columns)


def test_lstm_rows_pair_with_the_papers_by_size_not_name(tmp_path):
    # The paper's "LSTM-large" / "LSTM-medium" are the lstm_lm runs of 1500 / 650 units.
    runs = collect_runs(ptb_runs(tmp_path))
    num, _ = comparison_table(runs, "lstm-ptb", compare_with_paper=True)
    r = num[(num["size"] == 1500) & (num["sparsity"] == 0.9)].iloc[0]
    assert (r["model"], r["paper_model"]) == ("lstm_lm", "LSTM-large")
    assert r["paper"] == 80.24 and r["reproduced"] == 80.0 and r["confidence"] == "seed"
    medium = num[(num["size"] == 650) & (num["sparsity"] == 0.0)].iloc[0]
    assert medium["paper"] == 83.37 and medium["reproduced"] == 83.0
    # the 200-unit run is the paper's small dense row (value unknown here), not "not in paper"
    small = num[num["size"] == 200].iloc[0]
    assert small["paper_model"] == "LSTM-small" and small["coverage"] == "reproduced"
    assert (num["coverage"] != "not in paper").all()


def test_coverage_tells_planned_from_unplanned_rows(tmp_path):
    from gradprune.config import Run

    runs = collect_runs(ptb_runs(tmp_path))
    planned = [Run("lstm-ptb", "lstm_lm", "1500", "0.95", 0, "large-sparse")]
    num, disp = comparison_table(runs, "lstm-ptb", compare_with_paper=True, planned=planned)
    cov = num.set_index(["size", "sparsity"])["coverage"]
    assert cov[(1500.0, 0.95)] == "planned, no result"
    assert cov[(650.0, 0.9)] == "not planned"
    assert cov[(1500.0, 0.9)] == "reproduced"
    assert list(disp["Coverage"]) == list(num["coverage"])


def test_metric_aliases_pair_a_paper_metric_with_another_name(tmp_path):
    runs = collect_runs(mobilenet_runs(tmp_path))
    num, _ = comparison_table(runs, "mobilenet-imagenet", compare_with_paper=True,
                              metric_aliases={"top5": "top1"}, reference=load_reference()
                              .query("metric == 'top5'"))
    r = num[(num["size"] == 1.0) & (num["sparsity"] == 0.9)].iloc[0]
    assert (r["metric"], r["paper_metric"]) == ("top1", "top5")
    assert r["paper"] == 84.7 and r["reproduced"] == 62.0


def test_two_models_of_one_size_in_one_experiment_are_refused(tmp_path):
    files = mobilenet_runs(tmp_path / "a")
    files.append(write_run(tmp_path / "b", model="mobilenet_v2", sparsity=0.9))
    with pytest.raises(ValueError, match="two models of size 1.*one model per size"):
        comparison_table(collect_runs(files), "mobilenet-imagenet", compare_with_paper=True)


def test_comparison_without_paper(tmp_path):
    runs = collect_runs(mobilenet_runs(tmp_path))
    num, disp = comparison_table(runs, "mobilenet-imagenet", compare_with_paper=False)
    assert "paper" not in num and "Paper" not in disp and "Confidence" not in disp
    assert len(num) == 12  # 6 configurations x 2 metrics, no paper-only rows


# ------------------------------------------------------------------ files
def _check_png(path):
    assert path.exists() and path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200


def test_write_tables_and_experiment_figures(tmp_path):
    files = mobilenet_runs(tmp_path / "runs", seeds=(0, 1)) + ptb_runs(tmp_path / "runs")
    out = tmp_path / "out"
    written = write_tables(files, out, compare_with_paper=True)
    for stem in ["mobilenet-imagenet", "mobilenet-imagenet_comparison",
                 "mobilenet-imagenet_headline", "lstm-ptb_headline", "headline"]:
        for ext in ("csv", "md", "tex"):
            assert out / f"{stem}.{ext}" in written and (out / f"{stem}.{ext}").stat().st_size
    assert (out / "runs.csv").exists()
    comparison = (out / "mobilenet-imagenet_comparison.md").read_text()
    assert "corroborated" in comparison and "Coverage" in comparison
    assert "(12 of 15 paper rows reproduced, 3 no result)" in comparison
    assert r"\pm" in (out / "mobilenet-imagenet.tex").read_text()
    assert LS_WINS in (out / "headline.md").read_text()

    figs = write_experiment_figures(files, out / "fig", compare_with_paper=True)
    assert {p.name for p in figs} == {f"{e}_metric_vs_nnz.{x}" for e in
                                      ("mobilenet-imagenet", "lstm-ptb") for x in ("png", "pdf")}
    _check_png(out / "fig" / "mobilenet-imagenet_metric_vs_nnz.png")
    assert (out / "fig" / "lstm-ptb_metric_vs_nnz.pdf").stat().st_size > 1000


def test_write_run_figures(tmp_path):
    metrics = write_run(tmp_path, steps=120)
    steps = np.arange(0, 120, 2)
    sched = [0.0 if s < 20 else min(0.9, 0.9 * (1 - (1 - (s - 20) // 10 / 6) ** 3))
             for s in steps]
    pd.DataFrame({"step": steps, "epoch": steps // 40, "loss": 2.0 / (1 + steps / 30),
                  "lr": 0.1 * 0.97 ** steps, "target_sparsity": sched,
                  "model_sparsity": np.array(sched) * 0.8}).to_csv(
        tmp_path / "train_log.csv", index=False)
    pd.DataFrame({"step": [0, 40, 80, 119], "top1": [10.0, 40.0, 55.0, 60.0]}).to_csv(
        tmp_path / "eval.csv", index=False)
    rows = []
    for k in range(7):
        step = 20 + 10 * k
        target = 0.9 * (1 - (1 - k / 6) ** 3)
        for g, t, numel in [("pointwise", "conv1.weight", 1000), ("pointwise", "conv2.weight", 4000),
                            ("fc", "fc.weight", 2000)]:
            nnz = round(numel * (1 - target))
            rows.append({"step": step, "group": g, "tensor": t, "target": target,
                         "realized": 1 - nnz / numel, "numel": numel, "nnz": nnz})
    pd.DataFrame(rows).to_csv(tmp_path / "prune_log.csv", index=False)

    out = tmp_path / "fig"
    written = write_run_figures(metrics, tmp_path / "train_log.csv", tmp_path / "prune_log.csv",
                                out, eval_csv=tmp_path / "eval.csv")
    assert {p.name for p in written} == {f"{s}.{x}" for s in
                                         ("sparsity_schedule", "training_curves", "lr_sparsity")
                                         for x in ("png", "pdf")}
    for s in ("sparsity_schedule", "training_curves", "lr_sparsity"):
        _check_png(out / f"{s}.png")

    # a dense run: no prune log (None or header only), no eval file; the same names come out
    dense = write_run(tmp_path / "dense", role="dense", sparsity=0.0)
    written = write_run_figures(dense, tmp_path / "train_log.csv", None, tmp_path / "dense_fig")
    assert len(written) == 6 and all(p.stat().st_size > 0 for p in written)
    empty = tmp_path / "dense" / "prune_log.csv"
    empty.write_text("step,group,tensor,target,realized,numel,nnz\n")
    written = write_run_figures(dense, tmp_path / "train_log.csv", empty, tmp_path / "dense_fig2")
    assert {p.name for p in written} == {p.name for p in (tmp_path / "dense_fig").iterdir()}
