"""Snakemake entry point: fetch one registry file (mirror first, checksum verified)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.data.fetch import fetch
from gradprune.data.registry import Registry
from gradprune.workflow import logged_to

with logged_to(snakemake.log[0]):  # noqa: F821
    out = Path(snakemake.output[0])  # noqa: F821
    fetch(snakemake.wildcards.dataset, snakemake.wildcards.file, out.parent,  # noqa: F821
          mirror=snakemake.params.mirror, offline=snakemake.params.offline,  # noqa: F821
          registry=Registry.from_tsv(snakemake.params.registry) if snakemake.params.registry else None)  # noqa: F821
