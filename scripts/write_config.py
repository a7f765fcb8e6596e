"""Snakemake entry point: write the composed, validated config (results/config.yaml)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.config import write_config
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    write_config(sm.params.config, Path(sm.output[0]))
