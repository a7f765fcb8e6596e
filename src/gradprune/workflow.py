"""What the Snakemake rules ask of the package: file names per dataset, resources, targets.

Kept here (not in the .smk files) so that the rules stay declarative and this logic is tested.
"""

from __future__ import annotations

from gradprune.config import plan_runs
from gradprune.layout import FIGURES, PREPARED, RAW, RESULTS, TABLES, TRAINING_OUTPUTS

# dataset -> {input name the task reads: file under resources/prepared/<dataset>/}. Each family's
# prepare rule (workflow/rules/data*.smk) writes these files; the task gets them by name.
PREPARED_FILES: dict[str, dict[str, str]] = {
    "fashion-mnist": {"prepared": "data.safetensors"},
    "cifar-10": {"prepared": "data.safetensors"},
    # ImageNet is not downloaded: the prepare step checks data.imagenet and indexes it.
    "imagenet": {"prepared": "index.json"},
    # sentencepiece model, encoded ids of every split, raw eval text (gradprune.data.translation)
    "multi30k": {"spm": "spm.model", "prepared": "data.safetensors", "text": "text.json"},
    "wmt16": {"spm": "spm.model", "prepared": "data.safetensors", "text": "text.json"},
    # streams train/valid/test (int64) and the vocabulary (metadata), gradprune.data.lm
    "ptb": {"prepared": "corpus.safetensors"},
    "wikitext-2": {"prepared": "corpus.safetensors"},
}


def registry_for(config: dict):
    """The shipped registry, or the TSV named by ``data.registry`` (tests, private mirrors)."""
    from gradprune.data.registry import Registry, default_registry

    path = config["data"]["registry"]
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


def twin_inputs(twin_dir: str) -> dict[str, str]:
    """The inputs of a train job that copies the run in ``twin_dir`` (gradprune.config.twins):
    ``twin_<output name>`` for each file the train rule writes (gradprune.reuse reads them)."""
    return {f"twin_{name}": f"{twin_dir}/{file}" for name, file in TRAINING_OUTPUTS.items()}


# -- translation: one prepare step per dataset, shared by its experiments ----------------------

# settings that decide the prepared files; experiments sharing a dataset must agree on them. The
# direction is not one: both language sides are prepared and the task picks its source
# (gradprune.data.translation), so En->De and De->En experiments share one prepare step.
_SHARED = ("vocab_size", "spm_model_type", "spm_input_sentence_size")


def translation_experiments(config: dict, dataset: str) -> dict[str, dict]:
    return {name: exp for name, exp in config["experiments"].items()
            if exp["family"] == "translation" and exp["dataset"] == dataset}


def translation_prepare_settings(config: dict, dataset: str) -> dict:
    """Settings of the prepare step of ``dataset``: shared keys, union of the test sets."""
    from gradprune.data.translation import resolve_tests, settings

    exps = translation_experiments(config, dataset)
    if not exps:
        raise ValueError(f"no translation experiment uses dataset {dataset!r}")
    chosen: dict | None = None
    tests: list[str] = []
    for name, exp in exps.items():
        cfg = settings(exp)
        shared = {k: cfg[k] for k in _SHARED}
        if chosen is None:
            chosen, first = shared, name
        elif shared != chosen:
            diff = [k for k in _SHARED if shared[k] != chosen[k]]
            raise ValueError(
                f"experiments {first} and {name} both translate {dataset} but differ in "
                f"translation.{', '.join(diff)}; the prepared data of a dataset is shared: make them equal"
            )
        tests += [t for t in resolve_tests(dataset, cfg["test_sets"]) if t not in tests]
    return {**chosen, "test_sets": tests}


# What the prepare step of each translation dataset asks for. One thread for Multi30k: its BPE
# trains in seconds and gives the same pieces and ids as with two (only the model's recorded
# num_threads differs). A 2-thread job waits for both cores to be free at once, which on 2 cores
# held the default run's translation family back for 42 minutes; WMT16's 4.5M pairs do use the
# second thread.
TRANSLATION_PREPARE_RESOURCES = {
    "multi30k": {"threads": 1, "mem_mb": 3000, "runtime": 20},
    "wmt16": {"threads": 2, "mem_mb": 24000, "runtime": 240},
}


def translation_prepare_resources(dataset: str) -> dict[str, int]:
    """Threads, memory (MB) and runtime (minutes) of the prepare step of ``dataset``."""
    if dataset not in TRANSLATION_PREPARE_RESOURCES:
        raise ValueError(f"no prepare resources for translation dataset {dataset!r}; known: "
                         f"{', '.join(TRANSLATION_PREPARE_RESOURCES)} (add it to "
                         f"gradprune.workflow.TRANSLATION_PREPARE_RESOURCES)")
    return dict(TRANSLATION_PREPARE_RESOURCES[dataset])


def translation_prepare_inputs(config: dict, dataset: str) -> list[str]:
    """The downloaded files the prepare step of ``dataset`` reads."""
    from gradprune.data.translation import raw_files as translation_raw_files

    s = translation_prepare_settings(config, dataset)
    return [f"{RAW}/{f.dataset}/{f.file}" for f in translation_raw_files(dataset, s["test_sets"])]


# Table files per experiment written by gradprune.reporting.write_experiment_tables: results, the comparison
# (with the paper's numbers when the preset asks), the headline pairing.
TABLE_KINDS = ("", "_comparison", "_headline")
# An experiment's section of the report's landing page (gradprune.reporting.landing).
LANDING = f"{RESULTS}/report/{{experiment}}.rst"


def report_targets(config: dict) -> list[str]:
    """Tables and figures of every experiment the preset declares, and each run's figures."""
    out = [f"{TABLES}/headline.csv", f"{RESULTS}/config.yaml"]
    for name in config["experiments"]:
        out += [LANDING.format(experiment=name)]
        out += [f"{TABLES}/{name}{kind}.csv" for kind in TABLE_KINDS]
        out += [f"{FIGURES}/{name}_metric_vs_nnz.png"]
    out += [f"{run.figure_dir}/training_curves.png" for run in plan_runs(config)]
    from gradprune.footprint.paths import footprint_targets

    return out + footprint_targets(config)


def landing_inputs(config: dict, experiment: str) -> dict[str, str | list[str]]:
    """What an experiment's landing section reads (its headline table and metric-vs-NNZ figure),
    and the rest of the experiment's part of the report (its run figures, its footprint tables
    and figures), so that naming the section builds and reports that part whole."""
    from gradprune.footprint.paths import experiment_outputs

    return {
        "headline": f"{TABLES}/{experiment}_headline.csv",
        "figure": f"{FIGURES}/{experiment}_metric_vs_nnz.png",
        "tables": [f"{TABLES}/{experiment}{kind}.csv" for kind in TABLE_KINDS],
        "run_figures": [f"{run.figure_dir}/training_curves.png" for run in plan_runs(config)
                        if run.experiment == experiment],
        "footprint": [path for path in experiment_outputs(experiment).values()
                      if path.endswith((".csv", ".png"))],
    }


def experiment_metrics(config: dict, experiment: str) -> list[str]:
    """The metrics.json files of one experiment's planned runs."""
    return [r.metrics for r in plan_runs(config) if r.experiment == experiment]


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


def imagenet_problem(config: dict) -> str | None:
    """Why the ImageNet experiments of ``config`` cannot run yet (``data.imagenet`` unset), or None.

    ImageNet cannot be downloaded; the workflow refuses to start jobs that need it until the folder
    is set (its layout is then checked by the check_imagenet job before any training).
    """
    names = [n for n, e in config["experiments"].items() if e["dataset"] == "imagenet"]
    if not names or config["data"]["imagenet"]:
        return None
    return (
        f"data.imagenet is not set but experiments {', '.join(names)} train on ImageNet, which "
        "cannot be downloaded: give the folder holding ILSVRC2012 train/ and val/ class folders, "
        "e.g. --config data='{imagenet: /data/ILSVRC2012}'"
    )
