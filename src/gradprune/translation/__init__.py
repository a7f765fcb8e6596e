"""Translation helpers: subword vocabularies, prepared data, decoding and scoring (GNMT family)."""

from gradprune.translation.decode import beam_search, greedy_decode
from gradprune.translation.scoring import score_corpus

__all__ = ["beam_search", "greedy_decode", "score_corpus"]
