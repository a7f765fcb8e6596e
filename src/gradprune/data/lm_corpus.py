"""Word-level language-modelling corpora (PTB, WikiText-2) as in pytorch/examples.

Every line is split on whitespace and ends with <eos> (also empty lines), which gives the
standard counts: PTB train 929,589 tokens, 10,000 types counting <eos>. The vocabulary comes from
the training split only; words of valid/test missing from it become <unk>.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from gradprune.data.errors import FormatError

EOS = "<eos>"
UNK = "<unk>"
SPLIT_FILES = {
    "ptb": {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"},
    "wikitext-2": {
        "train": "wiki.train.tokens",
        "valid": "wiki.valid.tokens",
        "test": "wiki.test.tokens",
    },
}


def read_tokens(path: str | Path) -> Iterator[str]:
    """The words of a corpus file, with <eos> after every line."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield from line.split()
            yield EOS


class Vocabulary:
    """word <-> index, in order of first appearance (so ids are reproducible)."""

    def __init__(self, words: Iterable[str] = ()):
        self.idx2word: list[str] = []
        self.word2idx: dict[str, int] = {}
        for w in words:
            self.add(w)

    def add(self, word: str) -> int:
        if word not in self.word2idx:
            self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: str) -> bool:
        return word in self.word2idx

    def encode(self, words: Iterable[str]) -> torch.Tensor:
        """1-D LongTensor of ids; unknown words map to <unk> (which must be in the vocabulary)."""
        w2i = self.word2idx
        unk = w2i.get(UNK)
        ids = []
        for w in words:
            i = w2i.get(w, unk)
            if i is None:
                raise KeyError(f"word {w!r} is not in the vocabulary, which has no {UNK}")
            ids.append(i)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.idx2word[int(i)] for i in ids]


@dataclass
class Corpus:
    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def load_corpus(train: str | Path, valid: str | Path, test: str | Path) -> Corpus:
    """Vocabulary from `train` (plus <unk> if train lacks it) and the three encoded streams."""
    train_words = list(read_tokens(train))
    if not train_words:
        raise FormatError(f"{train}: the training split is empty")
    vocab = Vocabulary(train_words)
    vocab.add(UNK)  # a no-op for PTB and WikiText-2, whose training text already uses <unk>
    return Corpus(
        vocab=vocab,
        train=vocab.encode(train_words),
        valid=vocab.encode(read_tokens(valid)),
        test=vocab.encode(read_tokens(test)),
    )


def load_lm_dataset(name: str, root: str | Path) -> Corpus:
    """'ptb' or 'wikitext-2' from the folder holding its three registry files."""
    if name not in SPLIT_FILES:
        raise ValueError(f"unknown language-model dataset {name!r}; known: {sorted(SPLIT_FILES)}")
    files = SPLIT_FILES[name]
    return load_corpus(*(Path(root) / files[s] for s in ("train", "valid", "test")))


def load_ptb(root: str | Path) -> Corpus:
    return load_lm_dataset("ptb", root)


def load_wikitext2(root: str | Path) -> Corpus:
    return load_lm_dataset("wikitext-2", root)


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(n_steps, batch_size) tensor: the stream cut into batch_size contiguous columns.

    Tokens that do not fill a whole row are dropped, as in pytorch/examples word_language_model.
    """
    if stream.dim() != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tuple(stream.shape)}")
    n_steps = stream.numel() // batch_size
    if n_steps == 0:
        raise ValueError(f"{stream.numel()} tokens cannot fill one row of batch size {batch_size}")
    return stream[: n_steps * batch_size].view(batch_size, n_steps).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) windows starting at row i of a batchified source; target is shifted by 1."""
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len]
