"""The paper preset against the paper's reference: the shipped copy of the reference, and every
row of Tables 1-4 planned by ``presets/paper.yaml`` and paired with its run in the comparison."""

from __future__ import annotations

import json
import os

import pytest
from tests.workflow_helpers import ROOT, load_preset

from gradprune.config import plan_runs, size_value, validate_config
from gradprune.reporting import collect_runs, comparison_table, load_reference, reference_path
from gradprune.tasks.lm import LanguageModelTask
from gradprune.tasks.translation import TranslationTask
from gradprune.tasks.vision import VisionTask

SHARED_REFERENCE = ROOT.parent / "shared" / "reference" / "zhu_gupta_2017.csv"
FAMILY_METRICS = {"vision": VisionTask.metric_names, "lm": LanguageModelTask.metric_names,
                  "translation": TranslationTask.metric_names}


def test_shipped_reference_is_the_shared_one():
    if not SHARED_REFERENCE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED_REFERENCE} is missing: CI runs beside ../shared/reference")
        pytest.skip(f"no {SHARED_REFERENCE} beside this checkout")
    assert reference_path().read_bytes() == SHARED_REFERENCE.read_bytes(), (
        f"{reference_path()} differs from {SHARED_REFERENCE}: copy the shared file over it"
    )


def fake_metrics(run, exp: dict) -> dict:
    """A metrics.json of ``run`` in the schema of DEVELOPERS.md (the values do not matter)."""
    names = FAMILY_METRICS[exp["family"]]
    return {
        "experiment": run.experiment, "family": exp["family"], "task_metric": names[0],
        "model": run.model, "size": size_value(run.size), "role": run.role,
        "target_sparsity": float(run.sparsity), "seed": run.seed,
        "nnz": 1_000_000, "params": 2_000_000, "model_sparsity": 0.5,
        "metrics": {m: 1.0 for m in names},
        "train": {"steps": exp["train"]["total_steps"], "wall_time_s": 1.0},
        "provenance": {"config_hash": "0", "config": {}, "commit": "0", "dirty": False,
                       "versions": {}, "device": "cpu", "host": "h", "started": "",
                       "finished": ""},
    }


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """The paper preset's plan, a fake result for every planned run, and each comparison."""
    config = validate_config(load_preset("paper"))
    planned = plan_runs(config)
    root = tmp_path_factory.mktemp("paper-runs")
    files = []
    for i, run in enumerate(planned):
        path = root / f"{i}.json"
        path.write_text(json.dumps(fake_metrics(run, config["experiments"][run.experiment])))
        files.append(path)
    runs = collect_runs(files)
    tables = {exp: comparison_table(runs, exp, compare_with_paper=True, planned=planned)[0]
              for exp in config["experiments"]}
    return config, tables


@pytest.mark.parametrize("table, experiments", [
    (1, {"inceptionv3-imagenet"}), (2, {"mobilenet-imagenet"}), (3, {"lstm-ptb"}),
    (4, {"gnmt-wmt16-ende", "gnmt-wmt16-deen"}),
])
def test_every_paper_row_has_a_reproduced_counterpart(paper, table, experiments):
    config, tables = paper
    ref = load_reference()
    ref = ref[ref["table"] == table]
    assert set(ref["experiment"]) == experiments
    assert experiments <= set(config["experiments"]), "the paper preset lacks an experiment"
    for exp in experiments:
        num = tables[exp]
        paper_rows = num[num["coverage"] != "not in paper"]
        # every paper row (a value or not) appears once and its run was planned and has a result
        assert len(paper_rows) == (ref["experiment"] == exp).sum()
        unpaired = paper_rows[paper_rows["coverage"] != "reproduced"]
        assert unpaired.empty, f"{exp}: paper rows without a run:\n{unpaired}"
        with_value = paper_rows[paper_rows["paper"].notna()]
        assert with_value["reproduced"].notna().all()


def test_gnmt_is_pruned_layerwise_constant():
    """The paper's GNMT scheme: every pruned layer at the same sparsity (the preset's pruner)."""
    from gradprune.models import build_model
    from gradprune.pruning import n_to_prune
    from gradprune.runner import make_pruner

    config = validate_config(load_preset("paper"))
    for name in ("gnmt-wmt16-ende", "gnmt-wmt16-deen"):
        exp = config["experiments"][name]
        model = build_model("gnmt", size=16, vocab_size=40, **exp["model_args"])
        pruner = make_pruner(exp, model, 0.8)
        pruner.prune_to(0.8)
        masks, groups = pruner.masks(), pruner.groups
        # both embeddings, 5 encoder LSTMs (the first bidirectional), 4 decoder cells, projection
        assert len(groups) == 2 + 5 + 4 + 1
        for group in groups:
            numel = sum(masks[t].numel() for t in group.tensors)
            pruned = sum(int((~masks[t]).sum()) for t in group.tensors)
            assert pruned == n_to_prune(0.8, numel), group.name
