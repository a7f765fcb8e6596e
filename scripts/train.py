"""Snakemake entry point: gradual pruning to one target (or dense / small-dense training)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune import runner  # noqa: E402
from gradprune.workflow import experiment_resources, logged_to, run_from_wildcards  # noqa: E402

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    config = sm.params.config
    run = run_from_wildcards(config, sm.wildcards)
    runner.configure_torch(sm.threads, config["deterministic"])
    init = sm.input.get("init_checkpoint")
    init = Path(init) if init else None
    out_dir = Path(sm.output.weights).parent
    gpus = experiment_resources(config["experiments"][run.experiment])["gpu"]
    if gpus > 1:  # one process per GPU under torchrun (DistributedDataParallel)
        runner.train_distributed(config, run, dict(sm.input), out_dir, init, gpus, sm.threads)
    else:
        runner.train(config, run, dict(sm.input), out_dir, init)
