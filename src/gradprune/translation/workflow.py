"""What the translation prepare rules ask of the package (kept out of the .smk files, testable)."""

from __future__ import annotations

from gradprune.translation.data import DATASETS, raw_files, resolve_tests, settings

RAW = "resources/data"
# settings that decide the prepared files; experiments sharing a dataset must agree on them. The
# direction is not one: both language sides are prepared and the task picks its source
# (gradprune.translation.data), so En->De and De->En experiments share one prepare step.
_SHARED = ("vocab_size", "spm_model_type", "spm_input_sentence_size")


def translation_experiments(config: dict, dataset: str) -> dict[str, dict]:
    return {name: exp for name, exp in config["experiments"].items()
            if exp["family"] == "translation" and exp["dataset"] == dataset}


def prepare_settings(config: dict, dataset: str) -> dict:
    """Settings of the prepare step of ``dataset``: shared keys, union of the test sets."""
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


def prepare_inputs(config: dict, dataset: str) -> list[str]:
    s = prepare_settings(config, dataset)
    return [f"{RAW}/{f.dataset}/{f.file}" for f in raw_files(dataset, s["test_sets"])]


__all__ = ["DATASETS", "prepare_inputs", "prepare_settings",
           "translation_experiments"]
