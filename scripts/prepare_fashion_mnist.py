"""Snakemake entry point: decode the Fashion-MNIST idx files into one tensor file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.data.verify import verify_downloads
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.workflow import logged_to, registry_for

with logged_to(snakemake.log[0]):  # noqa: F821
    verify_downloads(snakemake.input, registry_for(snakemake.config))  # noqa: F821 (before reading)
    prepare_fashion_mnist(Path(snakemake.input[0]).parent, snakemake.output[0])  # noqa: F821
