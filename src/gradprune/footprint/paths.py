"""Where the footprint step's files live: the one place that names them.

Per run (in the run folder, :attr:`gradprune.config.Run.dir`): ``footprint.json`` and
``latency.json``. Per experiment: the tables and figures of :mod:`gradprune.footprint.report`.
"""

from __future__ import annotations

from gradprune.config import plan_runs
from gradprune.layout import FIGURES as FIGURE_DIR
from gradprune.layout import TABLES

FOOTPRINT_JSON = "footprint.json"
STRUCTURES = "structures"  # results/{tables,figures}/structures/<comparison>.*
LATENCY_JSON = "latency.json"
# Suffixes after the experiment name: results/tables/<exp><suffix>.<ext>
FOOTPRINT_TABLE = "_footprint"
LATENCY_TABLE = "_latency"
FRONTIER_TABLE = "_frontier"
BUDGET_TABLE = "_budget"
CROSSOVER_TABLE = "_crossover"
# results/figures/<exp><suffix>.png|pdf
FRONTIER_FIGURE = "_frontier"
LATENCY_FIGURE = "_latency"
DISPLAY_TABLES = (FRONTIER_TABLE, BUDGET_TABLE, CROSSOVER_TABLE)  # csv, md and tex each
FIGURES = (FRONTIER_FIGURE, LATENCY_FIGURE)  # png and pdf each


def run_files(run) -> dict[str, str]:
    return {"footprint": f"{run.dir}/{FOOTPRINT_JSON}", "latency": f"{run.dir}/{LATENCY_JSON}"}


def experiment_inputs(config: dict, experiment: str) -> dict[str, list[str]]:
    """What the experiment's report rule reads: every run's metrics, footprint and latency."""
    runs = [r for r in plan_runs(config) if r.experiment == experiment]
    return {"metrics": [r.metrics for r in runs],
            "footprint": [run_files(r)["footprint"] for r in runs],
            "latency": [run_files(r)["latency"] for r in runs]}


def experiment_outputs(experiment: str) -> dict[str, str]:
    """Files the experiment's report rule writes: {``<what>_<ext>``: path}."""
    tables, figures = f"{TABLES}/{experiment}", f"{FIGURE_DIR}/{experiment}"
    out = {"footprint_csv": f"{tables}{FOOTPRINT_TABLE}.csv",
           "latency_csv": f"{tables}{LATENCY_TABLE}.csv"}
    for suffix in DISPLAY_TABLES:
        out.update({f"{suffix[1:]}_{ext}": f"{tables}{suffix}.{ext}" for ext in ("csv", "md", "tex")})
    for suffix in FIGURES:
        out.update({f"{suffix[1:]}_{ext}": f"{figures}{suffix}.{ext}" for ext in ("png", "pdf")})
    return out


def caption(output: str) -> str:
    """The report caption (workflow/report/<caption>.rst) of an :func:`experiment_outputs` key."""
    what, ext = output.rsplit("_", 1)
    return f"{what}_figure" if ext in ("png", "pdf") else f"{what}_table"


def comparison_outputs(name: str) -> dict[str, str]:
    """Files a structure comparison writes (gradprune.footprint.structures)."""
    return {**{f"table_{ext}": f"{TABLES}/{STRUCTURES}/{name}.{ext}" for ext in ("csv", "md", "tex")},
            **{f"figure_{ext}": f"{FIGURE_DIR}/{STRUCTURES}/{name}.{ext}" for ext in ("png", "pdf")}}


def comparison_inputs(config: dict, name: str) -> dict[str, list[str]]:
    """Every run's metrics, footprint and latency of the comparison's experiments, experiment by
    experiment in the order the config lists them."""
    experiments = config.get("structure_comparisons", {})[name]
    return {kind: [f for e in experiments for f in experiment_inputs(config, e)[kind]]
            for kind in ("metrics", "footprint", "latency")}


def footprint_targets(config: dict) -> list[str]:
    """What the default target builds of this step: every experiment's CSV tables and PNG
    figures (they need every run's footprint.json and latency.json), and every structure
    comparison's."""
    out = [path for name in config["experiments"]
           for path in experiment_outputs(name).values() if path.endswith((".csv", ".png"))]
    return out + [path for name in config.get("structure_comparisons", {})
                  for path in comparison_outputs(name).values() if path.endswith((".csv", ".png"))]
