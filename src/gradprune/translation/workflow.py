"""What the translation prepare rules ask of the package (kept out of the .smk files, testable)."""

from __future__ import annotations

from pathlib import Path

from gradprune.translation.data import DATASETS, WMT16_FILES, raw_files, resolve_tests, settings

RAW = "resources/data"
# settings that decide the prepared files; experiments sharing a dataset must agree on them
_SHARED = ("source_lang", "target_lang", "vocab_size", "spm_model_type", "spm_input_sentence_size")


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
    return [f"{RAW}/{f.dataset}/{f.file}"
            for f in raw_files(dataset, s["test_sets"], s["source_lang"], s["target_lang"])]


def fetch_unregistered(dataset: str, file: str, out: str | Path, registry_path, mirror, offline) -> None:
    """Fetch a raw file of a dataset that may lack registry rows (WMT16): registry rows are used
    when present (checksum verified as always); without them, a clear error, never an unverified
    download."""
    from gradprune.data.errors import FetchError, UnknownDataError
    from gradprune.data.fetch import fetch
    from gradprune.data.registry import Registry, default_registry

    registry = Registry.from_tsv(registry_path) if registry_path else default_registry()
    try:
        registry.get(dataset, file)
    except UnknownDataError:
        url, member = WMT16_FILES.get(file, ("?", "?"))
        raise FetchError(
            f"{dataset}/{file} has no registry row: its size and sha256 are not known to this "
            f"project, so it is not downloaded unverified.\n"
            f"  canonical source: {url} (member {member})\n"
            f"  fix: add a row 'dataset file bytes sha256 url member' for it to "
            f"src/gradprune/data/registry.tsv or to a TSV named by data.registry, or put a "
            f"checked copy at {out}"
        ) from None
    fetch(dataset, file, Path(out).parent, mirror=mirror, offline=offline, registry=registry)


__all__ = ["DATASETS", "fetch_unregistered", "prepare_inputs", "prepare_settings",
           "translation_experiments"]
