"""Model sizes as paths write them, and per-size recipes.

``experiments.<name>.recipes.<size>`` overrides ``model_args``, ``train``, ``pruning`` or
``resources`` for the runs of that size (dense, pruned and small-dense alike), deep-merged onto the
experiment: the paper trains each LSTM size with its own Zaremba recipe.
"""

from __future__ import annotations

from gradprune.config.compose import deep_merge


def fmt_num(x) -> str:
    """Sizes as they appear in paths: 1.0 -> '1.0', 0.75 -> '0.75', 1500 -> '1500', 'large'."""
    if isinstance(x, (str, int)) and not isinstance(x, bool):
        return str(x)
    return repr(float(x))


def fmt_sparsity(s) -> str:
    """Sparsities in paths are always floats: 0 -> '0.0', 0.875 -> '0.875'."""
    return repr(float(s))


def size_value(size: str):
    """Path string back to the builder's argument: '0.75' -> 0.75, '1500' -> 1500, 'large'."""
    try:
        value = float(size)
    except ValueError:
        return size
    return int(value) if value.is_integer() and "." not in size else value


def model_sizes(exp: dict) -> list[str]:
    """Every size of an experiment as in paths: the large one, extra models, small-dense ones."""
    sizes = [exp["large"]["size"], *(m["size"] for m in exp.get("extra_models", []))]
    sizes += list(exp.get("small_dense", []))
    return list(dict.fromkeys(fmt_num(s) for s in sizes))


def prunable_sizes(exp: dict) -> list[str]:
    """Sizes trained densely to t0 and then pruned: the large model and the extra models."""
    return [fmt_num(s) for s in [exp["large"]["size"], *(m["size"] for m in exp.get("extra_models", []))]]


def experiment_for_size(exp: dict, size) -> dict:
    """The experiment as the runs of ``size`` train it: its recipe (if any) deep-merged on top."""
    recipes = exp.get("recipes") or {}
    recipe = recipes.get(fmt_num(size))
    if recipe is None:  # YAML keys may be numbers
        recipe = next((r for k, r in recipes.items() if fmt_num(k) == fmt_num(size)), None)
    return deep_merge(exp, recipe) if recipe else exp
