"""The `test` preset end to end through Snakemake, with downloads from a loopback HTTP server
serving synthetic Fashion-MNIST files in the canonical idx.gz format."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from tests.fixtures.data_formats import registry_for, write_fashion_mnist
from tests.fixtures.http_server import LoopbackServer
from tests.workflow_helpers import load_preset, mtimes, run_snakemake, snakemake, write_registry

from gradprune.data.registry import Entry

pytestmark = pytest.mark.slow

EXP = "mobilenet-fmnist"
RUN = "results/mobilenet-fmnist/mobilenet_v1-1.0/sparsity-{s}/seed-0"


def _synthetic_dataset(tmp_path):
    files_dir = tmp_path / "fixture-files"
    write_fashion_mnist(files_dir, n_train=160, n_test=48)
    return {p.name: p.read_bytes() for p in files_dir.iterdir()}


def _config(registry_tsv, mirror=None, offline=False):
    config = load_preset("test")
    config["data"] = {"registry": str(registry_tsv), "mirror": mirror, "offline": offline}
    return config


@pytest.fixture(scope="module")
def pipeline(finished_test_run):
    """The test preset run to the end from a copy of the repository root (tests/conftest.py)."""
    return finished_test_run


def _metrics(work, s):
    return json.loads((work / RUN.format(s=s) / "metrics.json").read_text())


def test_every_table_and_figure_is_built(pipeline):
    work, _, _ = pipeline
    for name in (f"{EXP}.csv", f"{EXP}.md", f"{EXP}.tex", f"{EXP}_headline.csv", "headline.md"):
        assert (work / "results/tables" / name).stat().st_size > 0
    for name in (f"{EXP}_metric_vs_nnz.png", f"{EXP}_metric_vs_nnz.pdf"):
        assert (work / "results/figures" / name).stat().st_size > 0
    figs = work / "results/figures" / EXP / "mobilenet_v1-1.0/sparsity-0.5/seed-0"
    assert {p.name for p in figs.iterdir()} >= {"sparsity_schedule.png", "training_curves.png", "lr_sparsity.png"}
    table = (work / "results/tables" / f"{EXP}.csv").read_text()
    assert table.count("\n") >= 5  # header + 4 runs
    # the curves score all 48 test images there are (fewer than eval_curve_examples = 2000)
    curve = (work / RUN.format(s="0.5") / "eval.csv").read_text().splitlines()
    assert curve[0] == "step,top1_first48,top5_first48"


def test_metrics_carry_results_nnz_and_provenance(pipeline):
    work, _, _ = pipeline
    dense, half, quarter = (_metrics(work, s) for s in ("0.0", "0.5", "0.75"))
    assert dense["role"] == "dense" and half["role"] == "large-sparse"
    assert dense["nnz"] == dense["params"]
    assert dense["nnz"] > half["nnz"] > quarter["nnz"]
    assert half["pruned_tensors_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert quarter["pruned_tensors_sparsity"] == pytest.approx(0.75, abs=1e-3)
    for m in (dense, half, quarter):
        assert 0.0 <= m["metrics"]["top1"] <= 100.0 and m["metrics"]["top5"] >= m["metrics"]["top1"]
        prov = m["provenance"]
        assert len(prov["config_hash"]) == 16 and prov["commit"]
        assert prov["versions"]["torch"] == "2.14.1"
        pruning = prov["config"]["pruning"]
        if m["role"] == "dense":  # a dense run's settings carry no mask schedule (run_settings)
            assert "final_sparsity" not in pruning
        else:  # the schedule the run followed, in full
            assert pruning["final_sparsity"] == m["target_sparsity"]
        assert m["seed"] == 0 and m["train"]["wall_time_s"] > 0


def test_fair_comparison_same_steps_and_shared_dense_phase(pipeline):
    work, _, _ = pipeline
    small = json.loads(
        (work / "results/mobilenet-fmnist/mobilenet_v1-0.25/sparsity-0.0/seed-0/metrics.json").read_text()
    )
    runs = [_metrics(work, s) for s in ("0.0", "0.5", "0.75")] + [small]
    assert {m["train"]["steps"] for m in runs} == {12}
    assert small["train"]["resumed_from_dense_t0"] is False
    # Every sparsity continues the same dense run: identical logs before t0 = 3.
    logs = [(work / RUN.format(s=s) / "train_log.csv").read_text().splitlines() for s in ("0.0", "0.5")]
    before_t0 = [line for line in logs[0][1:] if int(line.split(",")[0]) < 3]
    assert before_t0 and before_t0 == [line for line in logs[1][1:] if int(line.split(",")[0]) < 3]


def test_pruned_weights_are_zero_and_masks_shipped(pipeline):
    work, _, _ = pipeline
    tensors = load_file(str(work / RUN.format(s="0.75") / "model.safetensors"))
    masks = {k[len("__mask__."):]: v.bool() for k, v in tensors.items() if k.startswith("__mask__.")}
    assert masks, "pruned runs ship their masks"
    for name, mask in masks.items():
        assert torch.all(tensors[name][~mask] == 0)
        assert 1 - mask.float().mean().item() == pytest.approx(0.75, abs=0.01)
    log = (work / RUN.format(s="0.75") / "prune_log.csv").read_text().splitlines()
    assert len(log) > 1 and log[0].startswith("step,group,tensor,target,realized")


def test_rebuilding_one_target_touches_nothing_else(pipeline):
    work, preset_args, server = pipeline
    target = work / RUN.format(s="0.5")
    shutil.rmtree(target)
    before = mtimes(work / "results")
    requests_before = sum(server.requests.values())
    try:
        proc = run_snakemake(work, "--cores", "2", f"{RUN.format(s='0.5')}/metrics.json", *preset_args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        after = mtimes(work / "results")
        changed = {p for p in after if before.get(p) != after[p]}
        assert changed and all(p.startswith(RUN.format(s="0.5")[len("results/"):])
                               for p in changed), changed
        assert "rule pretrain" not in proc.stderr  # the dense checkpoint at t0 is reused
        assert sum(server.requests.values()) == requests_before  # nothing downloaded again
    finally:
        # The run is shared (tests/conftest.py finished_test_run): finish it again, footprint and
        # latency of the rebuilt run included, for the tests that read it after this one.
        restored = run_snakemake(work, "--cores", "2", *preset_args)
        assert restored.returncode == 0, restored.stderr[-3000:]


def _download_only(tmp_path, registry_entries, **config_kw):
    tsv = write_registry(tmp_path / "registry.tsv", registry_entries)
    target = "resources/data/fashion-mnist/train-labels-idx1-ubyte.gz"
    proc = snakemake(tmp_path / "work", _config(tsv, **config_kw), target)
    return proc, tmp_path / "work" / target


def test_corrupted_download_is_refused_and_nothing_left(tmp_path):
    files = _synthetic_dataset(tmp_path)
    server = LoopbackServer().start()
    try:
        name = "train-labels-idx1-ubyte.gz"
        registry = registry_for("fashion-mnist", files, f"{server.url}/fmnist")
        server.files = {f"/fmnist/{n}": c for n, c in files.items()}
        server.files[f"/fmnist/{name}"] = files[name][:-3] + b"xyz"  # same size, other bytes
        proc, out = _download_only(tmp_path, registry.entries("fashion-mnist"))
    finally:
        server.stop()
    assert proc.returncode != 0
    assert "sha256" in (proc.stdout + proc.stderr)
    assert not out.exists()
    assert not [p for p in out.parent.glob("*")] if out.parent.exists() else True


def test_mirror_is_tried_before_the_canonical_url(tmp_path):
    files = _synthetic_dataset(tmp_path)
    canonical, mirror = LoopbackServer().start(), LoopbackServer().start()
    try:
        canonical.files = {f"/fmnist/{n}": c for n, c in files.items()}
        mirror.files = {f"/fashion-mnist/{n}": c for n, c in files.items()}
        registry = registry_for("fashion-mnist", files, f"{canonical.url}/fmnist")
        proc, out = _download_only(tmp_path, registry.entries("fashion-mnist"), mirror=mirror.url)
    finally:
        canonical.stop()
        mirror.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_bytes() == files[out.name]
    assert mirror.requests[f"/fashion-mnist/{out.name}"] == 1
    assert sum(canonical.requests.values()) == 0


def test_offline_without_mirror_names_missing_files_and_the_fix(tmp_path):
    entries = [Entry("fashion-mnist", "train-labels-idx1-ubyte.gz", 10, "0" * 64, "http://example.invalid/x.gz")]
    proc, out = _download_only(tmp_path, entries, offline=True)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not out.exists()
    assert "http://example.invalid/x.gz" in text and "GRADPRUNE_DATA_MIRROR" in text


def test_html_report_bundles_tables_figures_and_provenance(pipeline):
    import zipfile

    work, preset_args, _ = pipeline
    proc = run_snakemake(work, "--report", "report.zip", *preset_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = zipfile.ZipFile(work / "report.zip").namelist()
    assert any(n.endswith("metrics.json") for n in names)
    assert any(n.endswith(f"{EXP}_metric_vs_nnz.png") for n in names)
    assert any(n.endswith("headline.csv") for n in names)


def test_html_report_opens_on_the_verdicts(pipeline):
    """The landing page (the workflow description) states each pair's verdict from headline.csv
    and links the metric-vs-NNZ figure."""
    import re

    import pandas as pd

    from gradprune.reporting.pairing import verdict_text

    work, preset_args, _ = pipeline
    proc = run_snakemake(work, "--report", "report.html", *preset_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (work / "report.html").read_text()
    landing = json.loads(re.search(r"var workflow_desc = (.*);\n", html).group(1))
    pairs = pd.read_csv(work / "results/tables/headline.csv")
    assert len(pairs) == 2  # the 50 % and 75 % sparse models, each against width 0.25
    for _, p in pairs.iterrows():
        assert verdict_text(p) in landing
    assert '<tt class="docutils literal">test</tt> preset' in landing  # from the config
    link = re.search(r'<a [^>]*href="javascript:app.showResultInfo\(([^)]*)\)"[^>]*>'
                     rf"{EXP}_metric_vs_nnz.png</a>", landing)
    assert link and f"results/figures/{EXP}_metric_vs_nnz.png" in link.group(1)
    assert "System Message" not in landing  # docutils' marker of a broken include or reference
