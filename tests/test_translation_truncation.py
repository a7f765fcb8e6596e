"""Training pairs longer than ``translation.max_train_len`` are truncated, as TF NMT truncates to
src_max_len / tgt_max_len, not dropped (issue 22, item 5)."""

from __future__ import annotations

import gzip
import json

import pytest
import torch
from tests.test_resume import GNMT, _vocab, _words

from gradprune.config import validate_config
from gradprune.data.translation import BOS, EOS, PAD
from gradprune.tasks.translation import TranslationTask

MAX_LEN = 6
LINES = {"train": 40, "val": 8, "test_2016_flickr": 8}


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    from gradprune.data import parallel_text
    from gradprune.data.translation import prepare

    tmp = tmp_path_factory.mktemp("truncation")
    gen = torch.Generator().manual_seed(5)
    vocab = {"en": _vocab(gen, 60), "de": _vocab(gen, 60)}
    folder = tmp / "raw" / "multi30k"
    folder.mkdir(parents=True)
    saved = dict(parallel_text.MULTI30K_SIZES)
    parallel_text.MULTI30K_SIZES.update(LINES)
    try:
        for split, n in LINES.items():
            for lang in ("en", "de"):
                lines = _words(gen, n, vocab[lang]).splitlines()
                if split == "train" and lang == "de":
                    lines[0] = ""  # an empty target: the preparation drops the pair
                if split == "train" and lang == "en":
                    lines[1] = " ".join(vocab["en"][:30])  # far longer than MAX_LEN
                (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        prepare(tmp / "raw", tmp / "prepared", "multi30k", None, vocab_size=100)
    finally:
        parallel_text.MULTI30K_SIZES.clear()
        parallel_text.MULTI30K_SIZES.update(saved)
    out = tmp / "prepared"
    return {"prepared": out / "data.safetensors", "spm": out / "spm.model", "text": out / "text.json"}


def _task(files, **train):
    exp = json.loads(json.dumps(GNMT))
    exp["translation"]["max_train_len"] = MAX_LEN
    exp["train"].update(batch_size=4, **train)
    config = validate_config({"preset": "test", "seeds": [0], "device": "cpu",
                              "experiments": {"gnmt-tiny": exp}})
    return TranslationTask(config["experiments"]["gnmt-tiny"], files, "cpu", 0)


def test_long_pairs_are_truncated_not_dropped(task_files):
    task = _task(task_files)
    # the preparation drops the pair with an empty side (line 0): the long one is pair 0
    assert len(task.train_src) == LINES["train"] - 1
    assert task.train_src.lengths[0] > 2 * MAX_LEN
    kept = task.train_index.tolist()
    assert kept == list(range(LINES["train"] - 1))  # every pair trains (before: pair 0 dropped)
    assert int((task.train_src.lengths > MAX_LEN).sum()) > 1  # the fixture's lines are long too
    # find the batch holding pair 0 and check its row: the first MAX_LEN ids of the source
    step = next(s for s in range(task.steps_per_epoch) if 0 in task.batch_pairs(s).tolist())
    pairs = task.batch_pairs(step).tolist()
    src, lengths, tgt_in, tgt_out = task.batch(step)
    row = pairs.index(0)
    full_src = task.train_src.get([0])[0]
    assert lengths[row] == MAX_LEN and src.shape[1] <= MAX_LEN
    assert src[row].tolist() == full_src[:MAX_LEN].tolist()
    for i, pair in enumerate(pairs):  # every target: BOS + its first MAX_LEN ids, and + EOS
        t = task.train_tgt.get([pair])[0][:MAX_LEN].tolist()
        assert tgt_in[i, : len(t) + 1].tolist() == [BOS, *t]
        assert tgt_out[i, : len(t) + 1].tolist() == [*t, EOS]
        assert set(tgt_out[i, len(t) + 1 :].tolist()) <= {PAD}


def test_token_count_of_the_loss_counts_truncated_targets(task_files):
    task = _task(task_files)
    pairs = torch.tensor([1, 2, 3])
    by_hand = sum(min(int(task.train_tgt.lengths[p]), MAX_LEN) + 1 for p in pairs.tolist())
    assert task.target_tokens(pairs) == by_hand
    # the same count as the padded target of a batch holds
    step = 0
    _, _, _, tgt_out = task.batch(step)
    assert task.target_tokens(task.batch_pairs(step)) == int((tgt_out != PAD).sum())
