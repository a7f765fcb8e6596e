"""Snakemake entry point: check the local ILSVRC2012 folders and write their index."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.data.imagenet import write_index
from gradprune.workflow import logged_to

with logged_to(snakemake.log[0]):  # noqa: F821
    write_index(snakemake.params.root, snakemake.output[0])  # noqa: F821
