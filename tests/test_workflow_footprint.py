"""The footprint, latency and frontier rules on the `test` preset through Snakemake (synthetic
Fashion-MNIST served on loopback, as test_workflow_vision), trimmed to three runs."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from tests.fixtures.data_formats import registry_for, write_fashion_mnist
from tests.fixtures.http_server import LoopbackServer
from tests.workflow_helpers import load_preset, snakemake, write_registry

from gradprune.config import Run, validate_config
from gradprune.footprint.formats import FORMATS, quantize
from gradprune.footprint.paths import footprint_targets
from gradprune.training.checkpoint import import_weights

pytestmark = pytest.mark.slow

EXP = "mobilenet-fmnist"
RUNS = {("0.25", "0.0"): "dense", ("0.25", "0.75"): "large-sparse",
        ("0.125", "0.0"): "small-dense"}


def _config(tsv):
    config = load_preset("test")
    config["data"] = {"registry": str(tsv)}
    exp = config["experiments"][EXP]
    exp["large"]["sparsities"] = [0.0, 0.75]
    config["footprint"] = {"latency_batches": [1, 4], "latency_rounds": 3,
                           "latency_min_time_s": 0.002}
    return config


def _run_dir(work, size, sparsity):
    return work / f"results/{EXP}/mobilenet_v1-{size}/sparsity-{sparsity}/seed-0"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("footprint")
    files_dir = tmp / "fixture-files"
    write_fashion_mnist(files_dir, n_train=160, n_test=48)
    files = {p.name: p.read_bytes() for p in files_dir.iterdir()}
    server = LoopbackServer().start()
    try:
        server.files = {f"/fmnist/{name}": content for name, content in files.items()}
        registry = registry_for("fashion-mnist", files, f"{server.url}/fmnist")
        tsv = write_registry(tmp / "registry.tsv", registry.entries("fashion-mnist"))
        config = _config(tsv)
        work = tmp / "work"
        proc = snakemake(work, config, *footprint_targets(config))
        assert proc.returncode == 0, proc.stderr[-5000:]
        yield work, config
    finally:
        server.stop()


def test_every_run_has_its_footprint_and_latency_and_the_tables_list_them(pipeline):
    import pandas as pd

    work, _ = pipeline
    for (size, sparsity), role in RUNS.items():
        fp = json.loads((_run_dir(work, size, sparsity) / "footprint.json").read_text())
        lat = json.loads((_run_dir(work, size, sparsity) / "latency.json").read_text())
        assert fp["role"] == lat["role"] == role
        assert set(fp["formats"]) == set(FORMATS)
        assert bool(fp["pruned_tensors"]) == (role == "large-sparse")
        assert lat["threads"] == 1
        assert {(t["mode"], t["batch"]) for t in lat["timings"]} == {
            (m, b) for m in ("dense", "sparse") for b in (1, 4)}
        assert all(len(t["samples_s"]) == 3 for t in lat["timings"])
    tables = work / "results/tables"
    fp_table = pd.read_csv(tables / f"{EXP}_footprint.csv")
    assert len(fp_table) == len(RUNS) * len(FORMATS)
    assert len(pd.read_csv(tables / f"{EXP}_latency.csv")) == len(RUNS) * 4
    budget = pd.read_csv(tables / f"{EXP}_budget.csv")
    assert set(budget["budget_size"]) == {0.125}
    assert (work / f"results/figures/{EXP}_frontier.png").stat().st_size > 0
    # a pruned model is smaller in every sparse format than in dense, at either precision
    sparse = fp_table[fp_table["sparsity"] == 0.75].set_index("format")["bytes"]
    assert sparse["bitmask"] < sparse["dense"] and sparse["csr-rel4-int8"] < sparse["dense-int8"]


def test_bitmask_bytes_are_a_bit_per_element_plus_four_per_value_plus_the_header(pipeline):
    work, _ = pipeline
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
        assert bitmask["bytes_header"] < 16_384  # the safetensors JSON header


def test_int8_metric_is_the_task_evaluation_of_the_quantized_weights(pipeline):
    from gradprune.runner import _new_state

    work, config = pipeline
    config = validate_config(config)
    run_dir = _run_dir(work, "0.25", "0.75")
    fp = json.loads((run_dir / "footprint.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state, _ = import_weights(run_dir / "model.safetensors")
    for name in fp["encoded_tensors"]:
        q, scale = quantize(state[name])
        state[name] = q.float() * scale
    run = Run(EXP, "mobilenet_v1", "0.25", "0.75", 0, "large-sparse")
    data = {"prepared": str(work / "resources/prepared/fashion-mnist/data.safetensors")}
    built = _new_state(config, run, data, with_pruner=False)
    built.model.load_state_dict(state)
    assert built.task.evaluate(built.model, split="test") == fp["int8"]["metrics"]
    assert fp["formats"]["csr-int8"]["metrics"] == fp["int8"]["metrics"]
    assert fp["formats"]["csr"]["metrics"] == metrics["metrics"]
    assert not torch.equal(q.float() * scale, import_weights(
        run_dir / "model.safetensors")[0][name])  # int8 did change the weights


def test_changing_latency_settings_reruns_only_the_measurements(pipeline):
    work, config = pipeline
    config = {**config, "footprint": {**config["footprint"], "latency_rounds": 4}}
    proc = snakemake(work, config, *footprint_targets(config), "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.MULTILINE))
    assert counts.get("latency") == str(len(RUNS)), counts
    assert not {"train", "evaluate", "pretrain", "footprint"} & set(counts), counts
