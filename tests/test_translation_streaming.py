"""WMT16 preparation streams its encoding: the ids come out as those of the list-based encoding
(``pack(sp.encode(all sentences))``), in a fraction of its memory, and the subword model is the
same whether its sentences come as a list or as a generator."""

from __future__ import annotations

import itertools
import random
import tracemalloc

import pytest
import torch

from gradprune.data.translation import encode_packed, load_sentencepiece, pack, train_sentencepiece

WORDS = [
    "haus", "katze", "hund", "baum", "wasser", "feuer", "licht", "stadt", "land", "meer",
    "berg", "fluss", "weg", "zeit", "tag", "nacht", "house", "cat", "dog", "tree", "water",
    "fire", "light", "city", "country", "sea", "mountain", "river", "way", "time", "day",
    "night",
]


def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def sp():
    return load_sentencepiece(train_sentencepiece(_corpus(400), vocab_size=60))


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_streamed_encoding_equals_the_list_based_one(sp, chunk):
    sentences = _corpus(123, seed=1)  # includes empty sentences
    flat, offsets = encode_packed(sp, iter(sentences), chunk=chunk)
    ref_flat, ref_offsets = pack(sp.encode(sentences))
    assert flat.dtype == torch.int32 and offsets.dtype == torch.int64
    assert torch.equal(flat, ref_flat) and torch.equal(offsets, ref_offsets)
    empty_flat, empty_offsets = encode_packed(sp, iter([]))
    assert empty_flat.numel() == 0 and empty_offsets.tolist() == [0]


def test_streamed_encoding_holds_a_fraction_of_the_lists_memory(sp):
    sentences = _corpus(20_000, seed=2)

    def peak(fn) -> int:
        tracemalloc.start()
        fn()
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    n_ids = int(encode_packed(sp, iter(sentences))[1][-1])
    as_lists = peak(lambda: pack(sp.encode(sentences)))
    streamed = peak(lambda: encode_packed(sp, iter(sentences), chunk=500))
    # streamed: the int32 ids twice (the chunks, then their concatenation), int64 lengths and
    # offsets, and one chunk's lists (500 sentences of at most 12 words); the lists hold a pointer per id twice, and at a real
    # vocabulary size (ids above 256 are not cached small ints) 28 bytes more per id
    assert streamed <= 8 * n_ids + 16 * len(sentences) + 500 * 12 * 80
    assert as_lists > 1.5 * streamed


def test_subword_model_is_the_same_from_a_generator():
    pairs = list(zip(_corpus(300, 3), _corpus(300, 4)))
    as_list = train_sentencepiece([s for s, _ in pairs] + [t for _, t in pairs], vocab_size=60)
    streamed = train_sentencepiece(itertools.chain((s for s, _ in pairs), (t for _, t in pairs)),
                                   vocab_size=60)
    assert as_list == streamed
