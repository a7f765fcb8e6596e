"""Snakemake entry point: one structure comparison's table and figure (gradprune.footprint.structures)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.footprint.structures import write_structure_comparison
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    results = Path(sm.output.table_csv).parents[2]  # results/tables/structures/<file>
    write_structure_comparison(sm.wildcards.comparison, sm.params.experiments, sm.input.metrics,
                               sm.input.footprint, sm.input.latency, results, sm.params.slack)
