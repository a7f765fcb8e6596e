"""Corpus BLEU and chrF with sacrebleu on detokenized output against the raw references.

The scores are stored with sacrebleu's signatures (tokenizer, smoothing, casing, version), so a
reported number says exactly how it was computed.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF

__all__ = ["score_corpus"]


def score_corpus(hypotheses: list[str], references: list[str]) -> dict:
    """{"bleu", "chrf", "bleu_signature", "chrf_signature"} of one reference per sentence."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": float(b.score),
        "chrf": float(c.score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
