"""How the config ``snakemake`` sees is composed from presets, overlays and ``--config`` pairs.

A *preset* is a YAML file with a top-level ``preset:`` key (``config.yaml`` = ``mini``,
``presets/paper.yaml``, ``presets/test.yaml``) and is a whole config. A file given with
``--configfile`` that has a ``preset:`` key replaces the default preset; files without one are
*overlays*, deep-merged in order on top of the preset (or of the default). ``--config key=value``
pairs come last; their nested values are read as YAML, so ``--config seeds='[0, 1]'`` gives a list
of integers. (Snakemake alone would merge every file into ``config.yaml`` and pass nested
``--config`` values as strings: the workflow composes the config itself, in :func:`compose_config`,
and records what it was made of under ``sources``.)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from gradprune.config.schema import ConfigError

DEFAULT_PRESET = "config.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML silently keeps the
    last one, so a preset with two blocks of one experiment would lose the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> dict:
    """A YAML mapping from ``path``; ConfigError naming the file when it cannot be used."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def deep_merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def typed_overrides(value):
    """``--config`` values with their nested strings read as YAML (Snakemake leaves them strings:
    ``seeds='[0, 1]'`` arrives as ``['0', '1']``, ``data='{offline: true}'`` as ``{'offline': 'true'}``)."""
    if isinstance(value, dict):
        return {k: typed_overrides(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed_overrides(v) for v in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def compose_config(cli_files=(), cli_overrides: dict | None = None, default_candidates=()) -> dict:
    """The config a run of the workflow uses (see the module docstring for the rules).

    ``cli_files``: the ``--configfile`` paths in order; ``cli_overrides``: the ``--config`` pairs as
    Snakemake parsed them; ``default_candidates``: where to look for the default preset when no
    preset file is given (the first that exists is used).
    """
    files = [(Path(p), read_config_file(p)) for p in cli_files]
    presets = [path for path, content in files if "preset" in content]
    if len(presets) > 1:
        raise ConfigError(
            f"two presets given ({presets[0]} and {presets[1]}): give one preset file (a file with a "
            "`preset:` key) and any number of overlays (files without one)"
        )
    if presets:
        base_path = presets[0]
        config = dict(files[[p for p, _ in files].index(base_path)][1])
    else:
        found = [Path(c) for c in default_candidates if Path(c).exists()]
        if not found:
            where = ", ".join(str(c) for c in default_candidates) or "(nowhere)"
            raise ConfigError(
                f"no preset: {DEFAULT_PRESET} was not found in {where} and no --configfile names a "
                "preset (a file with a `preset:` key, e.g. presets/test.yaml)"
            )
        base_path, config = found[0], read_config_file(found[0])
    sources = [str(base_path)]
    for path, content in files:
        if path != base_path:
            config = deep_merge(config, content)
            sources.append(f"overlay {path}")
    if cli_overrides:
        overrides = typed_overrides(dict(cli_overrides))
        config = deep_merge(config, overrides)
        sources += [f"--config {k}={json.dumps(v)}" for k, v in overrides.items()]
    config["sources"] = sources
    return config


def write_config(config: dict, path: str | Path) -> None:
    """The composed config as YAML, keys in the preset's order (``results/config.yaml``)."""
    header = "# The config this workflow ran with, as composed from `sources` and validated.\n"
    Path(path).write_text(header + yaml.safe_dump(config, sort_keys=False))
