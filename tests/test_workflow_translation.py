"""A tiny translation run through the real Snakefile on real Multi30k from the shared mirror."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("GRADPRUNE_TEST_MIRROR", ROOT.parent / "shared" / "data" / "mirror"))

EXPERIMENT = {
    "description": "tiny GNMT on a Multi30k subset",
    "family": "translation",
    "dataset": "multi30k",
    "model": "gnmt",
    "model_args": {"num_layers": 2, "dropout": 0.0},
    "large": {"size": 16, "sparsities": [0.0, 0.5]},
    "small_dense": [8],
    "train": {
        "total_steps": 6, "batch_size": 8, "eval_batch_size": 16, "train_subset": 256,
        "optimizer": {"name": "adam", "lr": 0.003}, "log_every": 2, "eval_every": 3,
        "checkpoint_every": 2,
    },
    "pruning": {"begin_step": 2, "frequency": 1, "n_updates": 2},
    "translation": {"vocab_size": 400, "beam_size": 3, "max_decode_len": 20, "curve_examples": 8,
                    "test_limit": 16},
    "resources": {"threads": 1, "mem_mb": 1000, "runtime": 10},
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tiny_translation_workflow(tmp_path):
    if not (MIRROR / "multi30k" / "train.en.gz").exists():
        pytest.skip(f"no Multi30k in the shared mirror {MIRROR}")
    config = {"preset": "test", "seeds": [0], "device": "cpu", "data": {"mirror": str(MIRROR)},
              "experiments": {"gnmt-tiny": EXPERIMENT}}
    cfg = tmp_path / "tiny-mt.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    runs = ["gnmt-16/sparsity-0.0", "gnmt-16/sparsity-0.5", "gnmt-8/sparsity-0.0"]
    targets = [f"results/gnmt-tiny/{r}/seed-0/metrics.json" for r in runs]
    targets.append("results/tables/gnmt-tiny.csv")
    env = {k: v for k, v in os.environ.items() if k != "GRADPRUNE_DATA_MIRROR"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(cfg), "--cores", "2", *targets],
        check=False, capture_output=True, text=True, timeout=280, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # About a minute on an idle 2-core machine (4 min on one shared with other jobs); the
    # subprocess timeout bounds it.
    print(f"tiny translation workflow: {time.perf_counter() - started:.0f} s")
    prepared = tmp_path / "resources/prepared/multi30k"
    assert (prepared / "spm.model").exists()
    assert json.loads((prepared / "text.json").read_text())["meta"]["train_pairs"] == 29_000
    for target in targets[:-1]:
        m = json.loads((tmp_path / target).read_text())
        assert m["family"] == "translation" and m["task_metric"] == "bleu"
        assert set(m["metrics"]) == {"bleu", "chrf"}
        assert 0.0 <= m["metrics"]["bleu"] <= 100.0
        scoring = m["scoring"]
        assert scoring["test_set"] == "test_2016_flickr"
        assert scoring["bleu_signature"].startswith("nrefs:1|case:mixed")
        assert "chrf_signature" in scoring and scoring["test_sets"]["test_2016_flickr"]["sentences"] == 16
    # curve: the first curve_examples (8) validation sentences, named so
    curve = (tmp_path / targets[1]).with_name("eval.csv").read_text().splitlines()
    assert curve[0] == "step,bleu_first8,chrf_first8" and curve[-1].startswith("5,")  # last step
    sparse = json.loads((tmp_path / targets[1]).read_text())
    dense = json.loads((tmp_path / targets[0]).read_text())
    assert sparse["nnz"] < dense["nnz"] and sparse["params"] == dense["params"]
    assert (tmp_path / "results/tables/gnmt-tiny.csv").read_text().count("\n") >= 4
