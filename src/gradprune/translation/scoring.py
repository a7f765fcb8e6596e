"""Corpus BLEU (detokenized and tokenized) and chrF of translations against raw references.

- ``bleu``, the primary score: sacreBLEU's default, on detokenized text (our decoder's output is
  sentencepiece-decoded text; references are the raw test-set text), 13a tokenization.
- ``bleu_tok``: BLEU as TF NMT, and so the paper's Table 4, computed it: on Moses-tokenized text
  (``wmt16_en_de.sh`` runs ``tokenizer.perl -l <lang>`` with its defaults on the references; TF NMT
  scores its output after subword removal against them), corpus BLEU-4 without smoothing (TF NMT
  ``compute_bleu(smooth=False)``). Here hypotheses and references are both tokenized with
  ``sacremoses`` (the maintained Python port of ``tokenizer.perl``; same defaults: escaping on, no
  aggressive hyphen splitting) in the target language, then scored by sacreBLEU with
  ``tokenize="none"`` and ``smooth_method="none"``. The paper comparison uses this one
  (:data:`PAPER_BLEU_NOTE`).
- ``chrf``: sacreBLEU's chrF.

Each score is stored with its signature, so a reported number says how it was computed; that of
``bleu_tok`` names the Moses pre-tokenization (sacreBLEU's own signature says only ``tok:none``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

from sacrebleu.metrics import BLEU, CHRF

__all__ = ["PAPER_BLEU_NOTE", "moses_tokenize", "score_corpus"]

PAPER_BLEU_NOTE = (
    "bleu_tok is compared with the paper's BLEU: Moses-tokenized BLEU as TF NMT computes it (the "
    "paper's Table 4); bleu (sacreBLEU 13a on detokenized text) is the primary score"
)


@lru_cache(maxsize=4)
def _moses(lang: str):
    from sacremoses import MosesTokenizer

    return MosesTokenizer(lang=lang)


def moses_tokenize(text: str, lang: str) -> str:
    """``text`` as ``tokenizer.perl -l <lang>`` writes it (defaults: escaped, no ``-a``)."""
    return _moses(lang).tokenize(text, return_str=True, escape=True)


def score_corpus(hypotheses: list[str], references: list[str], lang: str) -> dict:
    """{"bleu", "bleu_tok", "chrf"} and their signatures, one reference per sentence; ``lang``
    is the target language (the Moses tokenizer's rules for ``bleu_tok``)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    bleu_tok = BLEU(tokenize="none", smooth_method="none")
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    tok_hyps = [moses_tokenize(h, lang) for h in hypotheses]
    tok_refs = [moses_tokenize(r, lang) for r in references]
    t = bleu_tok.corpus_score(tok_hyps, [tok_refs])
    pretok = f"pretok:moses-{lang}+sacremoses.{metadata.version('sacremoses')}"
    return {
        "bleu": float(b.score),
        "bleu_tok": float(t.score),
        "chrf": float(c.score),
        "bleu_signature": str(bleu.get_signature()),
        "bleu_tok_signature": f"{bleu_tok.get_signature()}|{pretok}",
        "chrf_signature": str(chrf.get_signature()),
    }
