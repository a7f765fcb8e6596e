"""The one table of metric directions, labels and tie tolerances used by every report.

Look a metric up with :func:`metric_info`; names are matched against the patterns of
:data:`METRICS` in order (shell-style ``fnmatch``), so ``test_perplexity`` and ``val_perplexity``
both hit ``*perplexity`` (lower is better) while ``top1``/``top5``/``bleu``/``bleu_tok``/``chrf`` are
higher is better. An unknown metric raises ``KeyError`` rather than silently guessing a direction.

:data:`PAPER_METRICS` names the reproduced metric a paper metric is compared with where the two
are computed differently (the paper's BLEU is TF NMT's tokenized BLEU, ours ``bleu_tok``);
the comparison with the paper pairs through it (``gradprune.reporting.reference``) and says so
in each such row's note.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric.

    Attributes:
        higher_is_better: direction; drives the sign of every "who wins" difference.
        label: axis/table label.
        unit: unit shown in axis labels ("%" for accuracies, "" for unitless scores).
        tie_tolerance: absolute difference (in the metric's own unit) under which the headline
            comparison calls a "tie".
    """

    higher_is_better: bool
    label: str
    unit: str = ""
    tie_tolerance: float = 0.1

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def axis_label(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit}, {self.direction}"


#: pattern -> MetricInfo; the first matching pattern wins (exact names before wildcards).
METRICS: dict[str, MetricInfo] = {
    "top1": MetricInfo(True, "Top-1 accuracy", "%", 0.1),
    "top5": MetricInfo(True, "Top-5 accuracy", "%", 0.1),
    "bleu": MetricInfo(True, "BLEU", "", 0.1),
    "bleu_tok": MetricInfo(True, "BLEU (Moses-tokenized)", "", 0.1),
    "chrf": MetricInfo(True, "chrF", "", 0.1),
    "*perplexity": MetricInfo(False, "Perplexity", "", 0.5),
    "*loss": MetricInfo(False, "Loss", "", 0.01),
}


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of metric ``name`` (e.g. ``"top1"``, ``"test_perplexity"``)."""
    for pattern, info in METRICS.items():
        if fnmatchcase(name.lower(), pattern):
            if pattern.startswith("*"):
                pretty = name.replace("_", " ").capitalize()
                return MetricInfo(info.higher_is_better, pretty, info.unit, info.tie_tolerance)
            return info
    raise KeyError(
        f"unknown metric {name!r}: add it to gradprune.reporting.directions.METRICS "
        f"(known patterns: {', '.join(METRICS)})"
    )


def higher_is_better(name: str) -> bool:
    return metric_info(name).higher_is_better


def signed_gain(value: float, baseline: float, name: str) -> float:
    """``value - baseline`` signed so that a positive result means ``value`` is better."""
    diff = value - baseline
    return diff if higher_is_better(name) else -diff


#: paper metric -> (the reproduced metric its rows are compared with, why). Table 4's BLEU is TF
#: NMT's, on Moses-tokenized text; our primary ``bleu`` is sacreBLEU on detokenized text
#: (gradprune.translation.scoring).
PAPER_METRICS: dict[str, tuple[str, str]] = {
    "bleu": ("bleu_tok", "the paper's BLEU is Moses-tokenized (TF NMT): compared with bleu_tok"),
}
