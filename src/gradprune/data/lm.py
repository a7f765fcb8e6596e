"""Prepared language-model corpora (PTB, WikiText-2): the format the prepare step writes and the
LM task reads.

One safetensors file: int64 streams ``train``/``valid``/``test`` (every line ends with ``<eos>``;
the vocabulary of the training split) and the vocabulary itself in the metadata (``vocab``: the
words in id order, one per line).
"""

from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gradprune.atomic import atomic_path
from gradprune.data.lm_corpus import Vocabulary, load_lm_dataset


def prepare_lm_corpus(dataset: str, raw_dir, out_path) -> dict:
    """Encode ``dataset``'s three splits from ``raw_dir`` into one safetensors file.

    Returns the counts written (tokens per split, vocabulary size).
    """
    corpus = load_lm_dataset(dataset, raw_dir)
    tensors = {s: getattr(corpus, s).contiguous() for s in ("train", "valid", "test")}
    meta = {
        "dataset": dataset,
        "vocab": "\n".join(corpus.vocab.idx2word),
        **{f"tokens_{s}": str(t.numel()) for s, t in tensors.items()},
    }
    with atomic_path(out_path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return {"vocab_size": len(corpus.vocab), **{s: int(t.numel()) for s, t in tensors.items()}}


def load_lm_corpus(path) -> tuple[dict[str, torch.Tensor], Vocabulary]:
    """The streams and the vocabulary of a prepared corpus file."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        streams = {k: f.get_tensor(k) for k in ("train", "valid", "test")}
    if "vocab" not in meta:
        raise ValueError(f"{path}: no vocabulary in the metadata; rerun the prepare step")
    return streams, Vocabulary(meta["vocab"].split("\n"))
