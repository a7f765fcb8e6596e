"""Snakemake entry point: fetch one registry file (mirror first, checksum verified)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.data.fetch import fetch
from gradprune.data.registry import Registry
from gradprune.workflow import logged_to

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    out = Path(sm.output[0])
    # Where a file comes from (mirror, offline) is read from the config, not a param: the sha256
    # fixes its content, so changing the mirror must not redownload (and retrain) anything.
    data = sm.config["data"]
    fetch(sm.wildcards.dataset, sm.wildcards.file, out.parent, mirror=data["mirror"],
          offline=data["offline"],
          registry=Registry.from_tsv(sm.params.registry) if sm.params.registry else None)
