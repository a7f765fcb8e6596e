"""A tiny translation run through the real Snakefile on real Multi30k from the shared mirror."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tests.workflow_helpers import SHARED_MIRROR, load_preset, require_mirror, snakemake

from gradprune.config import plan_runs, validate_config
from gradprune.workflow import translation_prepare_inputs, translation_prepare_settings

ROOT = Path(__file__).resolve().parents[1]
MIRROR = SHARED_MIRROR

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
    require_mirror(MIRROR / "multi30k" / "train.en.gz")
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
        assert set(m["metrics"]) == {"bleu", "bleu_tok", "chrf"}
        assert 0.0 <= m["metrics"]["bleu"] <= 100.0
        scoring = m["scoring"]
        assert scoring["test_set"] == "test_2016_flickr"
        assert scoring["bleu_signature"].startswith("nrefs:1|case:mixed")
        assert scoring["direction"] == "en-de" and scoring["paper_metric"] == "bleu_tok"
        assert scoring["bleu_tok_signature"].endswith("pretok:moses-de+sacremoses.0.2.0")
        assert "chrf_signature" in scoring and scoring["test_sets"]["test_2016_flickr"]["sentences"] == 16
    # curve: the first curve_examples (8) validation sentences, named so
    curve = (tmp_path / targets[1]).with_name("eval.csv").read_text().splitlines()
    assert curve[0] == "step,bleu_first8,bleu_tok_first8,chrf_first8" and curve[-1].startswith("5,")  # last step
    sparse = json.loads((tmp_path / targets[1]).read_text())
    dense = json.loads((tmp_path / targets[0]).read_text())
    assert sparse["nnz"] < dense["nnz"] and sparse["params"] == dense["params"]
    assert (tmp_path / "results/tables/gnmt-tiny.csv").read_text().count("\n") >= 4


DIRECTIONS = ("gnmt-wmt16-ende", "gnmt-wmt16-deen")


def test_paper_preset_has_both_table4_directions_with_one_recipe():
    """Table 4's De-En half is the En-De experiment with the direction swapped: same model,
    recipe, vocabulary and test sets, so both share one prepare step."""
    config = validate_config(load_preset("paper"))  # schema defaults filled in
    direction = ("source_lang", "target_lang")
    ende, deen = ({k: v for k, v in config["experiments"][name].items() if k != "description"}
                  for name in DIRECTIONS)
    assert [ende["translation"][k] for k in direction] == ["en", "de"]
    assert [deen["translation"][k] for k in direction] == ["de", "en"]
    for exp in (ende, deen):
        exp["translation"] = {k: v for k, v in exp["translation"].items() if k not in direction}
    assert ende == deen
    rows = {name: {(r.size, r.sparsity, r.role) for r in plan_runs(config) if r.experiment == name}
            for name in DIRECTIONS}
    assert rows[DIRECTIONS[0]] == rows[DIRECTIONS[1]] == {
        ("1024", "0.0", "dense"), ("1024", "0.8", "large-sparse"), ("1024", "0.85", "large-sparse"),
        ("1024", "0.9", "large-sparse"), ("512", "0.0", "small-dense"), ("256", "0.0", "small-dense")}
    # one prepare step for both; the direction is not a prepare setting
    assert translation_prepare_settings(config, "wmt16") == {
        "vocab_size": 36548, "spm_model_type": "bpe", "spm_input_sentence_size": 2000000,
        "test_sets": ["newstest2015", "newstest2014"]}
    assert translation_prepare_inputs(config, "wmt16")[-2:] == [
        "resources/data/wmt14/newstest2014-deen-src.en.sgm",
        "resources/data/wmt14/newstest2014-deen-ref.de.sgm"]
    config["experiments"]["gnmt-wmt16-deen"]["translation"]["vocab_size"] = 32000
    with pytest.raises(ValueError, match="differ in translation.vocab_size"):
        translation_prepare_settings(config, "wmt16")


def test_paper_preset_dry_run_plans_both_directions_from_one_prepare(tmp_path):
    targets = [f"results/{name}/gnmt-{size}/sparsity-{sparsity}/seed-0/metrics.json"
               for name in DIRECTIONS for size, sparsity in (("1024", "0.9"), ("256", "0.0"))]
    proc = snakemake(tmp_path, load_preset("paper"), "-n", *targets, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    stats = out[out.index("Job stats:"):]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE))
    # 4 WMT16 archives + 2 newstest2014 files, one prepare; per direction a 1024 pretrain and
    # two trained and evaluated runs
    assert counts == {"download": "6", "prepare_translation": "1", "pretrain": "2", "train": "4",
                      "evaluate": "4", "total": "17"}
    jobs = re.findall(r"wildcards: experiment=([\w-]+), model=gnmt, size=(\d+)", out)
    assert {(e, s) for e, s in jobs} == {(e, s) for e in DIRECTIONS for s in ("1024", "256")}
    assert "wildcards: dataset=wmt16\n" in out
