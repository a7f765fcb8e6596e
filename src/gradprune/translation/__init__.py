"""Translation helpers: decoding and scoring (GNMT family); the prepared data are
:mod:`gradprune.data.translation`'s."""

from gradprune.translation.decode import beam_search, greedy_decode
from gradprune.translation.scoring import score_corpus

__all__ = ["beam_search", "greedy_decode", "score_corpus"]
