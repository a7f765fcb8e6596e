"""Tables, paper comparison, headline pairing and figures of gradprune runs.

Reads only ``metrics.json`` (schema in DEVELOPERS.md), ``train_log.csv``, ``eval.csv`` and
``prune_log.csv``. Entry points for Snakemake scripts live in :mod:`gradprune.reporting.api`.
"""

from gradprune.reporting.api import (
    write_experiment_figures,
    write_landing,
    write_run_figures,
    write_tables,
)
from gradprune.reporting.collect import aggregate_seeds, collect_runs, load_metrics
from gradprune.reporting.directions import METRICS, higher_is_better, metric_info
from gradprune.reporting.pairing import headline_pairs, judge
from gradprune.reporting.reference import comparison_table, load_reference, reference_path
from gradprune.reporting.tables import experiment_table

__all__ = [
    "METRICS", "aggregate_seeds", "collect_runs", "comparison_table", "experiment_table",
    "headline_pairs", "higher_is_better", "judge", "load_metrics", "load_reference", "metric_info",
    "reference_path", "write_experiment_figures", "write_landing", "write_run_figures",
    "write_tables",
]
