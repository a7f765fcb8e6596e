"""eval.csv names what its curves score (gradprune.curves) and the curve figure says it."""

from __future__ import annotations

import pandas as pd

from gradprune.curves import curve_scope, curve_table, parse_curve_column
from gradprune.reporting.figures import plot_training_curves


def test_curve_table_names_every_scored_metric_with_n():
    rows = [{"step": 249, "val_perplexity": 420.5}, {"step": 499, "val_perplexity": 388.0}]
    fields, out = curve_table(rows, 2000)
    assert fields == ["step", "val_perplexity_first2000"]
    assert out[1] == {"step": 499, "val_perplexity_first2000": 388.0}
    # vision returns two metrics; a run without curves (translation curve_examples 0) has none
    assert curve_table([{"step": 5, "top1": 50.0, "top5": 90.0}], 48)[0] == [
        "step", "top1_first48", "top5_first48"]
    assert curve_table([], 0) == (["step"], [])


def test_parse_curve_column_round_trip_and_old_columns():
    assert parse_curve_column("val_perplexity_first2000") == ("val_perplexity", 2000)
    assert parse_curve_column("bleu_first8") == ("bleu", 8)
    assert parse_curve_column("top1") == ("top1", None)          # eval.csv of older runs
    assert curve_scope("lm", 2000) == "first 2000 validation tokens"
    assert curve_scope("vision", 48) == "first 48 test-split images"
    assert curve_scope("vision", None) == "a held-out subset"


def test_curve_figure_labels_the_scored_subset():
    train = pd.DataFrame({"step": range(0, 100, 5), "loss": [5.0 - i * 0.1 for i in range(20)],
                          "lr": 1.0, "target_sparsity": 0.0, "model_sparsity": 0.0})
    evals = pd.DataFrame({"step": [49, 99], "val_perplexity_first2000": [420.5, 388.0]})
    # the LM's task metric (test perplexity) is not on the curve: its validation column is drawn
    fig = plot_training_curves(train, evals, metric="test_perplexity", family="lm")
    ax = fig.axes[1]
    assert "first 2000 validation tokens" in ax.get_ylabel()
    assert "first 2000 validation tokens" in ax.get_title()
    assert list(ax.lines[0].get_ydata()) == [420.5, 388.0]
