"""The footprint, latency and frontier rules on the finished `test` preset run (synthetic
Fashion-MNIST served on loopback; tests/conftest.py `finished_test_run`)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tests.workflow_helpers import planned_jobs, run_snakemake

from gradprune.config import Run, compose_config, run_settings, validate_config
from gradprune.footprint.formats import FORMATS, quantize
from gradprune.training.checkpoint import import_weights

pytestmark = pytest.mark.slow

EXP = "mobilenet-fmnist"
RUNS = {("1.0", "0.0"): "dense", ("1.0", "0.5"): "large-sparse", ("1.0", "0.75"): "large-sparse",
        ("0.25", "0.0"): "small-dense"}


def _run_dir(work, size, sparsity):
    return work / f"results/{EXP}/mobilenet_v1-{size}/sparsity-{sparsity}/seed-0"


@pytest.fixture(scope="module")
def pipeline(finished_test_run):
    """The test preset run to the end (its default target includes the footprint step) from a
    copy of the repository root (tests/conftest.py), and its config as composed."""
    repo, preset_args, _ = finished_test_run
    config = validate_config(compose_config([repo / "presets/test.yaml", repo / "test-data.yaml"]))
    return repo, preset_args, config


def test_every_run_has_its_footprint_and_latency_and_the_tables_list_them(pipeline):
    import pandas as pd

    work, _, config = pipeline
    batches = config["footprint"]["latency_batches"]
    for (size, sparsity), role in RUNS.items():
        fp = json.loads((_run_dir(work, size, sparsity) / "footprint.json").read_text())
        lat = json.loads((_run_dir(work, size, sparsity) / "latency.json").read_text())
        assert fp["role"] == lat["role"] == role
        assert set(fp["formats"]) == set(FORMATS)
        assert bool(fp["pruned_tensors"]) == (role == "large-sparse")
        assert lat["threads"] == 1
        assert {(t["mode"], t["batch"]) for t in lat["timings"]} == {
            (m, b) for m in ("dense", "sparse") for b in batches}
        assert all(len(t["samples_s"]) == config["footprint"]["latency_rounds"]
                   for t in lat["timings"])
    tables = work / "results/tables"
    fp_table = pd.read_csv(tables / f"{EXP}_footprint.csv")
    assert len(fp_table) == len(RUNS) * len(FORMATS)
    assert len(pd.read_csv(tables / f"{EXP}_latency.csv")) == len(RUNS) * 2 * len(batches)
    budget = pd.read_csv(tables / f"{EXP}_budget.csv")
    assert set(budget["budget_size"]) == {0.25}
    assert (work / f"results/figures/{EXP}_frontier.png").stat().st_size > 0
    # a pruned model is smaller in every sparse format than in dense, at either precision
    sparse = fp_table[fp_table["sparsity"] == 0.75].set_index("format")["bytes"]
    assert sparse["bitmask"] < sparse["dense"] and sparse["csr-rel4-int8"] < sparse["dense-int8"]


def test_bitmask_bytes_are_a_bit_per_element_plus_four_per_value_plus_the_header(pipeline):
    work, _, _ = pipeline
    for size, sparsity in RUNS:
        run = _run_dir(work, size, sparsity)
        fp = json.loads((run / "footprint.json").read_text())
        state, masks = import_weights(run / "model.safetensors")
        expect = 0
        for name, t in state.items():
            if name in fp["encoded_tensors"]:
                nnz = int(masks[name].sum()) if name in masks else t.numel()
                expect += math.ceil(t.numel() / 8) + 4 * nnz
            else:  # 4 bytes per float32 element (8 per BatchNorm int64 counter)
                expect += t.numel() * t.element_size()
        bitmask = fp["formats"]["bitmask"]
        assert bitmask["bytes"] - bitmask["bytes_header"] == expect
        # The safetensors JSON header: one entry (name, dtype, shape, offsets) per array, a bitmask
        # and a values array per encoded tensor; a few hundred bytes each at most, not a payload.
        arrays = len(state) + len(fp["encoded_tensors"])
        assert 0 < bitmask["bytes_header"] < 256 * arrays


def test_int8_metric_is_the_task_evaluation_of_the_quantized_weights(pipeline):
    from gradprune.runner import new_state

    work, _, config = pipeline
    run_dir = _run_dir(work, "1.0", "0.75")
    fp = json.loads((run_dir / "footprint.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state, _ = import_weights(run_dir / "model.safetensors")
    for name in fp["encoded_tensors"]:
        q, scale = quantize(state[name])
        state[name] = q.float() * scale
    run = Run(EXP, "mobilenet_v1", "1.0", "0.75", 0, "large-sparse")
    data = {"prepared": str(work / "resources/prepared/fashion-mnist/data.safetensors")}
    built = new_state(run_settings(config, run), run, data, with_pruner=False)
    built.model.load_state_dict(state)
    assert built.task.evaluate(built.model, split="test") == fp["int8"]["metrics"]
    assert fp["formats"]["csr-int8"]["metrics"] == fp["int8"]["metrics"]
    assert fp["formats"]["csr"]["metrics"] == metrics["metrics"]
    assert not torch.equal(q.float() * scale, import_weights(
        run_dir / "model.safetensors")[0][name])  # int8 did change the weights


def test_changing_latency_settings_reruns_only_the_measurements(pipeline):
    work, preset_args, _ = pipeline
    overlay = work / "more-rounds.yaml"
    overlay.write_text("footprint: {latency_rounds: 4}\n")
    try:
        proc = run_snakemake(work, "-n", *preset_args, overlay.name)
    finally:
        overlay.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc)
    assert jobs["latency"] == len(RUNS), jobs
    assert not {"train", "evaluate", "pretrain", "footprint"} & set(jobs), jobs
