"""Snakemake entry point: gradual pruning to one target (or dense / small-dense training)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner
from gradprune.workflow import logged_to, run_from_wildcards

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    config = sm.params.config
    run = run_from_wildcards(sm.wildcards, sm.params.role)
    runner.configure_torch(sm.threads, config["deterministic"])
    init = sm.input.get("init_checkpoint")
    runner.train_job(config, run, dict(sm.input), Path(sm.output.weights).parent,
                     Path(init) if init else None, sm.threads)
