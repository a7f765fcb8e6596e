"""Snakemake entry point: encode a language-model corpus (PTB, WikiText-2) into one tensor file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.data.lm import prepare_lm_corpus
from gradprune.data.verify import verify_downloads
from gradprune.workflow import logged_to, registry_for

with logged_to(snakemake.log[0]):  # noqa: F821
    verify_downloads(snakemake.input, registry_for(snakemake.config))  # noqa: F821 (before reading)
    counts = prepare_lm_corpus(snakemake.wildcards.dataset, Path(snakemake.input[0]).parent,  # noqa: F821
                               snakemake.output[0])  # noqa: F821
    print(f"{snakemake.wildcards.dataset}: {counts}")  # noqa: F821
