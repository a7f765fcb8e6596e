"""benchmarks/device_check.py runs end to end on the CPU (--dry-run), writes what it measured,
and `gradprune plan` takes a device file's figures first but never a dry run's."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from gradprune import costs

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "device_dry-run.json"
    result = _script().main(["--dry-run", "--out", str(out)])
    return out, result


def test_dry_run_covers_every_paper_model_the_loader_and_ptb_medium(dry):
    out, result = dry
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["dry_run"] and result["kind"] == "dry-run"
    fp32 = {(s["model"], s["size"]) for s in result["steps"] if s["precision"] == "fp32"}
    assert fp32 == {("inception_v3", "1.0"), ("mobilenet_v1", "1.0"), ("lstm_lm", "1500"),
                    ("lstm_lm", "650"), ("lstm_lm", "200"), ("gnmt", "1024")}
    mobilenet = {s["precision"] for s in result["steps"] if s["model"] == "mobilenet_v1"}
    errors = " ".join(result["errors"])
    assert all(p in mobilenet or f"mobilenet_v1 1.0 {p}" in errors for p in ("fp32", "tf32", "bf16"))
    assert all(s["examples_per_s"] > 0 and s["steps"] >= 1 for s in result["steps"])
    shapes = {tuple(entry["shape"]) for entry in result["loader"]}
    assert shapes == {(4, 3, 224, 224), (4, 3, 299, 299)}
    assert all(entry["workers"] == 1 and entry["images_per_s"] > 0 for entry in result["loader"])
    assert math.isfinite(result["ptb_medium"]["metrics"]["test_perplexity"])


def test_a_spent_budget_starts_nothing_more_and_still_writes(tmp_path):
    out = tmp_path / "d.json"
    result = _script().main(["--dry-run", "--budget-s", "0", "--out", str(out)])
    assert result["steps"] == [] and result["loader"] == []
    assert "inception_v3 1.0 fp32: not run, budget spent" in result["errors"]
    assert json.loads(out.read_text())["errors"] == result["errors"]


def test_kind_names():
    kind_of = _script().kind_of
    assert kind_of("NVIDIA H100 80GB HBM3") == "H100" and kind_of("NVIDIA H200") == "H200"
    assert kind_of("NVIDIA A100-SXM4-80GB") == "A100"


def test_the_plan_reads_device_files_but_not_dry_runs(dry, tmp_path):
    out, result = dry
    (tmp_path / out.name).write_text(out.read_text())
    committed = len(costs.load_throughputs(device_results=None)["measured"])
    assert len(costs.load_throughputs(device_results=tmp_path)["measured"]) == committed
    measured = {**result, "dry_run": False, "kind": "H100", "device": "NVIDIA H100",
                "steps": [{"model": "lstm_lm", "size": "650", "precision": "fp32",
                           "examples_per_s": 123456.0}]}
    (tmp_path / "device_H100.json").write_text(json.dumps(measured))
    table = costs.load_throughputs(device_results=tmp_path)
    got = costs.throughput(table, "H100", "lstm_lm", "650", "fp32", 1e8)
    assert got.examples_per_s == 123456.0 and "device_H100.json" in got.source
