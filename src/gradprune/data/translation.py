"""Prepared translation data: which raw files a dataset needs, sentencepiece BPE, encoded ids.

``prepare`` reads the raw files through the data layer's readers, trains one shared sentencepiece
BPE model on both sides of the training data, and writes under ``resources/prepared/<dataset>/``:

- ``spm.model``: the sentencepiece model (pad 0, unk 1, bos 2, eos 3);
- ``data.safetensors``: ragged int32 ids of both language sides of every split,
  ``<split>.<lang>_ids`` + ``<split>.<lang>_offsets`` for ``lang`` in :data:`LANGS`; evaluation
  splits are ``valid`` and ``test.<name>``;
- ``text.json``: the raw sentences of both sides of the evaluation splits (BLEU is computed on
  detokenized output against these raw references), the test-set order and the settings used.

The prepared data hold no direction: an experiment's ``translation.source_lang`` /
``target_lang`` choose which side is the source when the task reads them, so En->De and De->En
share one prepare step (one subword model, as TF NMT's ``wmt16_en_de.sh`` serves both directions).
Every evaluation set is one set of aligned sentences serving both directions: newstest2013 is
plain parallel text; newstest2015 is read from its de-en files (``src.de``, ``ref.en``) whatever
the direction, as ``wmt16_en_de.sh`` does; newstest2014 from WMT14's test-full ``src.en`` and
``ref.de``, whose text equals that of ``ref.en`` and ``src.de`` (all 3,003 segments, checked on
the published files); IWSLT17 pairs the source sides of its two archives.

Datasets: ``multi30k`` (task 1, train / val / test_2016_flickr ...) and ``wmt16`` (Europarl v7,
Common Crawl, News Commentary v11; newstest2013 dev; newstest2014/2015 tests). Extra test sets that
any dataset may add: ``iwslt17`` (TED tst2017) and ``newstest2014`` (both in the registry).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gradprune.atomic import atomic_path, write_bytes
from gradprune.data.parallel_text import (
    MULTI30K_SIZES,
    WMT16_CORPORA,
    WMT_DEV_ARCHIVE,
    load_iwslt17,
    load_multi30k,
    load_newstest2014,
    load_wmt16_train,
    load_wmt_newstest,
)

PAD, UNK, BOS, EOS = 0, 1, 2, 3
#: the language sides of every prepared split, in the order the subword model's training reads them
LANGS = ("en", "de")
#: version of the prepared layout (1: one direction's src/tgt; 2: both language sides)
LAYOUT = 2
DATASETS = ("multi30k", "wmt16")
MULTI30K_TESTS = tuple(s for s in MULTI30K_SIZES if s.startswith("test_"))
EXTRA_TESTS = ("iwslt17", "newstest2014")
WMT16_TESTS = ("newstest2014", "newstest2015")
DEFAULT_TESTS = {"multi30k": ["test_2016_flickr"], "wmt16": ["newstest2015", "newstest2014"]}


def settings(experiment: dict) -> dict:
    """The ``translation`` settings of a validated translation experiment (the schema fills in
    their defaults), with the direction checked."""
    out = experiment["translation"]
    if {out["source_lang"], out["target_lang"]} != set(LANGS):
        raise ValueError(f"translation.source_lang / target_lang must be one each of {LANGS}, got "
                         f"{out['source_lang']} -> {out['target_lang']}")
    return out


@dataclass(frozen=True)
class RawFile:
    dataset: str  # registry dataset (folder under resources/data)
    file: str


def valid_name(dataset: str) -> str:
    return {"multi30k": "val", "wmt16": "newstest2013"}[dataset]


def allowed_tests(dataset: str) -> tuple[str, ...]:
    if dataset == "multi30k":
        return MULTI30K_TESTS + EXTRA_TESTS
    if dataset == "wmt16":
        return WMT16_TESTS + ("iwslt17",)
    raise ValueError(f"unknown translation dataset {dataset!r}; known: {', '.join(DATASETS)}")


def resolve_tests(dataset: str, test_sets: list[str] | None) -> list[str]:
    """The test sets of a run (the first is the headline ``test`` split)."""
    tests = list(test_sets) if test_sets else list(DEFAULT_TESTS[dataset])
    bad = [t for t in tests if t not in allowed_tests(dataset)]
    if bad:
        raise ValueError(f"test sets {bad} are not available for {dataset}; choose from "
                         f"{', '.join(allowed_tests(dataset))}")
    if len(set(tests)) != len(tests):
        raise ValueError(f"test sets listed twice: {tests}")
    return tests


def raw_files(dataset: str, test_sets: list[str]) -> list[RawFile]:
    """Every raw file ``prepare`` reads (both language sides), in a stable order."""
    src, tgt = LANGS
    files: list[RawFile] = []
    if dataset == "multi30k":
        for split in ["train", "val"] + [t for t in test_sets if t in MULTI30K_TESTS]:
            files += [RawFile("multi30k", f"{split}.{lang}.gz") for lang in LANGS]
    elif dataset == "wmt16":
        files += [RawFile("wmt16", archive) for archive, _ in WMT16_CORPORA.values()]
        files.append(RawFile("wmt16", WMT_DEV_ARCHIVE))  # newstest2013 (valid) and newstest2015
    else:
        raise ValueError(f"unknown translation dataset {dataset!r}; known: {', '.join(DATASETS)}")
    if "newstest2014" in test_sets:
        files += [RawFile("wmt14", f"newstest2014-deen-src.{src}.sgm"),
                  RawFile("wmt14", f"newstest2014-deen-ref.{tgt}.sgm")]
    if "iwslt17" in test_sets:
        files += [RawFile("iwslt17", "de-en.tgz"), RawFile("iwslt17", "en-de.tgz")]
    return files


# -- reading raw text ----------------------------------------------------------------------------


def load_train(raw_root: Path, dataset: str, src: str = "en", tgt: str = "de") -> list[tuple[str, str]]:
    if dataset == "multi30k":
        return load_multi30k(raw_root / "multi30k", "train", src, tgt)
    return load_wmt16_train(raw_root / "wmt16", src, tgt)


def load_eval(raw_root: Path, dataset: str, name: str, src: str = "en",
              tgt: str = "de") -> list[tuple[str, str]]:
    """Pairs of an evaluation set (``val``, ``newstest2013``, a test set)."""
    if name in MULTI30K_SIZES:
        return load_multi30k(raw_root / "multi30k", name, src, tgt)
    if name == "iwslt17":
        return load_iwslt17(raw_root / "iwslt17", src, tgt, 2017)
    if name == "newstest2014":
        return load_newstest2014(raw_root / "wmt14", src, tgt)
    if name in ("newstest2013", "newstest2015"):
        return load_wmt_newstest(raw_root / "wmt16", name, src, tgt)
    raise ValueError(f"unknown evaluation set {name!r}")


# -- sentencepiece -------------------------------------------------------------------------------


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, model_type: str = "bpe",
                        character_coverage: float = 1.0, input_sentence_size: int = 0,
                        threads: int = 1, seed: int = 0) -> bytes:
    """A serialized sentencepiece model trained on ``sentences`` (pad 0, unk 1, bos 2, eos 3)."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
        model_type=model_type, character_coverage=character_coverage,
        pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
        input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
        num_threads=max(1, threads), max_sentence_length=8192, minloglevel=2,
    )
    return model.getvalue()


def load_sentencepiece(path_or_bytes):
    import sentencepiece as spm

    if isinstance(path_or_bytes, (bytes, bytearray)):
        return spm.SentencePieceProcessor(model_proto=bytes(path_or_bytes))
    return spm.SentencePieceProcessor(model_file=str(path_or_bytes))


def pack(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged sequences -> (flat int32 ids, int64 offsets of length n + 1)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    offsets = torch.zeros(len(seqs) + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    flat = torch.tensor([i for s in seqs for i in s], dtype=torch.int32)
    return flat, offsets


#: sentences encoded per chunk by :func:`encode_packed` (WMT16: about 50 chunks per side)
ENCODE_CHUNK = 100_000


def encode_packed(sp, sentences: Iterable[str], threads: int = 1,
                  chunk: int = ENCODE_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """``pack(sp.encode(list(sentences)))``, streamed: ``chunk`` sentences at a time are encoded
    and turned into int32 arrays at once, so memory holds the int32 ids (4 bytes each; twice
    while the chunks are joined) and one chunk's Python lists, not Python lists of every id
    (WMT16: ~120M ids per side, over 4 GB as lists)."""
    pieces, lengths = [], []
    it = iter(sentences)
    while batch := list(itertools.islice(it, chunk)):
        ids = sp.encode(batch, num_threads=max(1, threads))
        n = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
        pieces.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(n.sum())))
        lengths.append(n)
        del ids
    n = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(n) + 1, dtype=np.int64)
    np.cumsum(n, out=offsets[1:])
    flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    return torch.from_numpy(flat), torch.from_numpy(offsets)


def unpack(flat: torch.Tensor, offsets: torch.Tensor) -> list[torch.Tensor]:
    return [flat[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


# -- the prepare step ----------------------------------------------------------------------------


def prepare(raw_root: str | Path, out_dir: str | Path, dataset: str, test_sets: list[str] | None,
            vocab_size: int, model_type: str = "bpe", character_coverage: float = 1.0,
            input_sentence_size: int = 0, threads: int = 1,
            outputs: dict[str, str] | None = None) -> dict:
    """Train the subword model, encode both sides of every split and write the prepared files
    (layout in the module docstring); returns the meta."""
    from safetensors.torch import save_file

    raw_root, out_dir = Path(raw_root), Path(out_dir)
    tests = resolve_tests(dataset, test_sets)
    outputs = outputs or {"spm": str(out_dir / "spm.model"), "prepared": str(out_dir / "data.safetensors"),
                          "text": str(out_dir / "text.json")}
    train = [(s, t) for s, t in load_train(raw_root, dataset, *LANGS) if s.strip() and t.strip()]
    print(f"{dataset}: {len(train)} training pairs; training sentencepiece ({model_type}, {vocab_size})")
    model_bytes = train_sentencepiece(itertools.chain((s for s, _ in train), (t for _, t in train)),
                                      vocab_size, model_type, character_coverage,
                                      input_sentence_size, threads)
    sp = load_sentencepiece(model_bytes)
    tensors: dict[str, torch.Tensor] = {}

    def encode_sides(key: str, pairs: list[tuple[str, str]]) -> None:
        for i, lang in enumerate(LANGS):
            tensors[f"{key}.{lang}_ids"], tensors[f"{key}.{lang}_offsets"] = encode_packed(
                sp, (p[i] for p in pairs), threads)

    encode_sides("train", train)
    text: dict = {"valid": None, "tests": {}, "test_sets": tests}
    evals = [("valid", valid_name(dataset))] + [(f"test.{t}", t) for t in tests]
    for key, name in evals:
        pairs = load_eval(raw_root, dataset, name, *LANGS)
        encode_sides(key, pairs)
        entry = {"name": name, **{lang: [p[i] for p in pairs] for i, lang in enumerate(LANGS)}}
        if key == "valid":
            text["valid"] = entry
        else:
            text["tests"][name] = entry
        print(f"{name}: {len(pairs)} pairs")
    meta = {"dataset": dataset, "layout": LAYOUT, "langs": list(LANGS),
            "vocab_size": sp.get_piece_size(), "model_type": model_type, "train_pairs": len(train),
            "pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS}
    text["meta"] = meta
    write_bytes(outputs["spm"], model_bytes)
    with atomic_path(outputs["prepared"]) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"meta": json.dumps(meta)})
    write_bytes(outputs["text"], json.dumps(text, ensure_ascii=False).encode("utf-8"))
    return meta
