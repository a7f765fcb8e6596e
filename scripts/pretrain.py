"""Snakemake entry point: train the large dense model up to the first pruning step."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner
from gradprune.workflow import logged_to, pretrain_run

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    config = sm.params.config
    run = pretrain_run(sm.wildcards)
    runner.configure_torch(sm.threads, config["deterministic"])
    runner.pretrain(config, run, dict(sm.input), Path(sm.output.checkpoint), Path(sm.params.run_dir))
