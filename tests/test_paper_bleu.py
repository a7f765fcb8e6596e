"""The paper's Table 4 BLEU is TF NMT's tokenized BLEU: its rows pair with ``bleu_tok``, not with
the primary sacreBLEU ``bleu`` (gradprune.reporting.directions.PAPER_METRICS)."""

from __future__ import annotations

import math

import pandas as pd

from gradprune.reporting import comparison_table, load_reference, metric_info
from gradprune.reporting.collect import run_record


def _gnmt_run(role, size, sparsity, nnz, bleu, bleu_tok):
    data = {"experiment": "gnmt-wmt16-ende", "family": "translation", "task_metric": "bleu",
            "model": "gnmt", "size": size, "role": role, "target_sparsity": sparsity, "seed": 0,
            "nnz": nnz, "params": 210_917_377,
            "metrics": {"bleu": bleu, "bleu_tok": bleu_tok, "chrf": 55.0}}
    return run_record(data)


def test_the_papers_bleu_rows_are_compared_with_tokenized_bleu():
    ref = load_reference()
    gnmt = ref[ref["experiment"].str.startswith("gnmt-")]
    assert not gnmt.empty and set(gnmt["metric"]) == {"bleu"}  # the paper's own name
    runs = pd.DataFrame([_gnmt_run("dense", 1024, 0.0, 210_917_377, 28.0, 29.0),
                         _gnmt_run("large-sparse", 1024, 0.9, 23_047_373, 27.5, 28.5)])
    num, disp = comparison_table(runs, "gnmt-wmt16-ende", compare_with_paper=True, reference=ref)
    row = num[(num["metric"] == "bleu_tok") & (num["sparsity"] == 0.9)].iloc[0]
    assert (row["paper"], row["reproduced"]) == (26.19, 28.5)  # En-De 90 %: 26.19 in the paper
    assert row["paper_metric"] == "bleu" and row["note"].startswith("the paper's BLEU is Moses-tokenized")
    assert math.isclose(row["difference"], 28.5 - 26.19)
    sacre = num[(num["metric"] == "bleu") & num["reproduced"].notna()]
    assert len(sacre) == 2 and sacre["paper"].isna().all()
    assert "bleu_tok" in set(disp["Metric"])
    assert metric_info("bleu_tok").higher_is_better
