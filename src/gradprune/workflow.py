"""What the Snakemake rules ask of the package: file names per dataset, resources, targets.

Kept here (not in the .smk files) so that the rules stay declarative and this logic is tested.
"""

from __future__ import annotations

from gradprune.config import RESULTS, plan_runs

RAW = "resources/data"
PREPARED = "resources/prepared"

# dataset -> {input name the task reads: file under resources/prepared/<dataset>/}. Each family's
# prepare rule (workflow/rules/data*.smk) writes these files; the task gets them by name.
PREPARED_FILES: dict[str, dict[str, str]] = {
    "fashion-mnist": {"prepared": "data.safetensors"},
    "cifar-10": {"prepared": "data.safetensors"},
    # ImageNet is not downloaded: the prepare step checks data.imagenet and indexes it.
    "imagenet": {"prepared": "index.json"},
    # sentencepiece model, encoded ids of every split, raw eval text (gradprune.translation.data)
    "multi30k": {"spm": "spm.model", "prepared": "data.safetensors", "text": "text.json"},
    "wmt16": {"spm": "spm.model", "prepared": "data.safetensors", "text": "text.json"},
    # streams train/valid/test (int64) and the vocabulary (metadata), tasks/lm.py
    "ptb": {"prepared": "corpus.safetensors"},
    "wikitext-2": {"prepared": "corpus.safetensors"},
}


def registry_for(config: dict):
    """The shipped registry, or the TSV named by ``data.registry`` (tests, private mirrors)."""
    from gradprune.data.registry import Registry, default_registry

    path = config.get("data", {}).get("registry")
    return Registry.from_tsv(path) if path else default_registry()


def raw_files(config: dict, dataset: str) -> list[str]:
    """Downloaded files of a registry dataset, as workflow paths."""
    return [f"{RAW}/{dataset}/{name}" for name in registry_for(config).files(dataset)]


def data_inputs(experiment: dict) -> dict[str, str]:
    """Named inputs a training or evaluation job of this experiment reads."""
    dataset = experiment["dataset"]
    if dataset not in PREPARED_FILES:
        raise ValueError(
            f"dataset {dataset!r} has no prepare step yet; prepared datasets: {sorted(PREPARED_FILES)}"
        )
    return {name: f"{PREPARED}/{dataset}/{file}" for name, file in PREPARED_FILES[dataset].items()}


def experiment_resources(experiment: dict) -> dict:
    res = {"threads": 2, "mem_mb": 4000, "runtime": 120, "gpu": 0}
    res.update(experiment.get("resources", {}))
    return res


# Table files per experiment written by gradprune.reporting.write_tables: results, the comparison
# (with the paper's numbers when the preset asks), the headline pairing.
TABLE_KINDS = ("", "_comparison", "_headline")


def report_targets(config: dict) -> list[str]:
    """Tables and figures of every experiment the preset declares, and each run's figures."""
    out = [f"{RESULTS}/tables/headline.csv"]
    for name in config["experiments"]:
        out += [f"{RESULTS}/tables/{name}{kind}.csv" for kind in TABLE_KINDS]
        out += [f"{RESULTS}/figures/{name}_metric_vs_nnz.png"]
    out += [f"{run_figure_dir(run)}/training_curves.png" for run in plan_runs(config)]
    from gradprune.footprint.paths import footprint_targets

    return out + footprint_targets(config)


def run_figure_dir(run) -> str:
    return f"{RESULTS}/figures/{run.experiment}/{run.model}-{run.size}/sparsity-{run.sparsity}/seed-{run.seed}"


def all_metrics(config: dict) -> list[str]:
    return [r.metrics for r in plan_runs(config)]


class logged_to:
    """Send a script's stdout/stderr (progress bars included) to the rule's log file."""

    def __init__(self, path) -> None:
        self.path = path

    def __enter__(self):
        import sys
        from pathlib import Path

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", buffering=1)
        self._saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self._fh
        return self

    def __exit__(self, exc_type, exc, tb):
        import sys
        import traceback

        if exc is not None:
            traceback.print_exception(exc_type, exc, tb, file=self._fh)
        sys.stdout, sys.stderr = self._saved
        self._fh.close()
        return False


# Keys of an experiment that list its runs rather than describe how one run trains.
_RUN_LISTS = ("small_dense", "extra_models")
# Top-level keys that do not change how a model trains (measurements of trained models).
_NOT_TRAINING = ("experiments", "seeds", "footprint")


def job_config(config: dict, experiment: str) -> dict:
    """The config a training job needs: only its experiment, without the lists of other runs.

    Snakemake reruns a job when its params change; passing the whole config would retrain every
    model when a user adds one sparsity or another experiment to the preset.
    """
    exp = {k: v for k, v in config["experiments"][experiment].items() if k not in _RUN_LISTS}
    exp["large"] = {"size": exp["large"]["size"]}
    top = {k: v for k, v in config.items() if k not in _NOT_TRAINING}
    return {**top, "experiments": {experiment: exp}}


def run_from_wildcards(wildcards, role: str):
    """The Run a job's wildcards name (the workflow checked it belongs to the preset)."""
    from gradprune.config import Run

    return Run(wildcards.experiment, wildcards.model, wildcards.size, wildcards.sparsity,
               int(wildcards.seed), role)


def pretrain_run(wildcards):
    """The dense large model a pretrain job trains (shared by all sparsities of that model)."""
    from gradprune.config import Run

    return Run(wildcards.experiment, wildcards.model, wildcards.size, "0.0", int(wildcards.seed), "dense")
