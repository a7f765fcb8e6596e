"""Model definitions (one architecture per module) and a name -> builder registry."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gradprune.models import gnmt, inception, lstm_lm, mobilenet

__all__ = ["MODELS", "build_model", "known_models", "prune_include"]

# name -> (builder, include patterns for GradualPruner)
MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    "mobilenet_v1": (mobilenet.mobilenet_v1, mobilenet.PRUNE_INCLUDE),
    "inception_v3": (inception.inception_v3, inception.PRUNE_INCLUDE),
    "lstm_lm": (lstm_lm.lstm_lm, lstm_lm.PRUNE_INCLUDE),
    "gnmt": (gnmt.gnmt, gnmt.PRUNE_INCLUDE),
}


def known_models() -> list[str]:
    return sorted(MODELS)


def _entry(name: str):
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(known_models())}"
        ) from None


def build_model(family_name: str, **kwargs) -> nn.Module:
    """Build model ``family_name`` (e.g. ``"mobilenet_v1"``) with the builder's keyword arguments."""
    return _entry(family_name)[0](**kwargs)


def prune_include(name: str) -> list[str]:
    """fnmatch patterns of the weights the paper prunes, for ``GradualPruner(include=...)``."""
    return list(_entry(name)[1])
