"""Names of the training-curve columns (``eval.csv``): what they score and how much of it.

The curves score only the first ``N`` units of a held-out split (``train.eval_curve_examples``; for
translation also capped by ``translation.curve_examples``), so their last point differs from the
final metric in ``metrics.json``, which scores the whole test split. Each column therefore carries
``N``: ``val_perplexity_first2000`` is the perplexity of the first 2000 validation tokens. ``N`` is
what the task really scored (:meth:`gradprune.tasks.base.Task.curve_size`), so a split shorter than
the limit shows its true length. ImageNet scores a fixed stratified subset of ``N`` validation
images rather than the first ``N`` (:func:`gradprune.tasks.imagenet.stratified_subset`). Standard library only: the training and report steps both use it.
"""

from __future__ import annotations

import re

_COLUMN = re.compile(r"^(?P<metric>.+)_first(?P<n>[0-9]+)$")

#: what one scored unit of the curve is, per family. Fashion-MNIST and CIFAR-10 have no validation
#: split, and ImageNet's validation set is its test set: vision curves score test-split images.
CURVE_UNITS = {"lm": "validation tokens", "vision": "test-split images",
               "translation": "validation sentences"}


def curve_column(metric: str, n: int) -> str:
    """``val_perplexity`` scored on 2000 tokens -> ``val_perplexity_first2000``."""
    return f"{metric}_first{int(n)}"


def parse_curve_column(name: str) -> tuple[str, int | None]:
    """``(metric, N)`` of a curve column; ``(name, None)`` for an older column without ``N``."""
    m = _COLUMN.match(name)
    return (m["metric"], int(m["n"])) if m else (name, None)


def curve_scope(family: str | None, n: int | None) -> str:
    """``"first 2000 validation tokens"``; ``"a held-out subset"`` when ``n`` is unknown."""
    if n is None:
        return "a held-out subset"
    return f"first {n} {CURVE_UNITS.get(family or '', 'held-out examples')}"


#: the key of a logged curve point that holds how many units it scored
CURVE_SIZE = "curve_size"


def curve_table(rows: list[dict], n: int) -> tuple[list[str], list[dict]]:
    """``(fields, rows)`` of eval.csv from the logged ``{"step", "curve_size", <metric>: value}``
    rows: every metric the curve evaluation returned, renamed with the size the point scored
    (``n`` for a point logged without one). A run whose curve size changed midway
    (``train.eval_curve_examples`` is not part of a run's identity) gets one column per size."""
    def named(row):
        size = row.get(CURVE_SIZE, n)
        return {curve_column(k, size): v for k, v in row.items() if k not in ("step", CURVE_SIZE)}

    renamed = [{"step": row["step"], **named(row)} for row in rows]
    fields = list(dict.fromkeys(k for row in renamed for k in row if k != "step"))
    return ["step"] + fields, renamed
