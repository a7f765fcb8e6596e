"""The config's JSON schema (``workflow/schemas/config.schema.yaml``), the one home of defaults.

Snakemake's ``validate`` reads the same file. :func:`schema_errors` validates one mapping against
it and fills in its defaults the way ``snakemake.utils.validate(..., set_default=True)`` does.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A preset that cannot be used; the message names the key and what is allowed."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class):
    # The jsonschema documentation's recipe: fill "default" values while validating.
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def schema_errors(instance: dict, schema: dict, prefix: str = "") -> None:
    """Fill ``instance``'s defaults in place; ConfigError listing (up to 10) violations."""
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    # Two passes: defaults filled in the first can themselves hold defaults (nested objects).
    for _ in range(2):
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = []
            for err in errors[:10]:
                where = ".".join([prefix] * bool(prefix) + [str(p) for p in err.absolute_path])
                lines.append(f"  {where or '<top level>'}: {err.message}")
            raise ConfigError("invalid configuration:\n" + "\n".join(lines))
