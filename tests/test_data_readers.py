"""Readers on synthetic files written in the canonical formats (no network, no real data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.fixtures.data_formats import (
    gz,
    idx_bytes,
    iwslt_xml_text,
    sgm_text,
    tgz_bytes,
    write_fashion_mnist,
    write_lines,
)

from gradprune.data.errors import FormatError
from gradprune.data.fashion_mnist import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    FashionMNIST,
    load_fashion_mnist,
    read_idx_images,
    read_idx_labels,
)
from gradprune.data.lm_corpus import (
    EOS,
    UNK,
    Vocabulary,
    batchify,
    get_batch,
    load_corpus,
    load_ptb,
    load_wikitext2,
)
from gradprune.data.parallel_text import (
    load_iwslt17,
    load_multi30k,
    load_newstest2014,
    parse_segments,
)

# --- Fashion-MNIST -------------------------------------------------------------------------------


def test_fashion_mnist_round_trip(tmp_path):
    written = write_fashion_mnist(tmp_path, n_train=7, n_test=3)
    for split in ("train", "test"):
        images, labels = load_fashion_mnist(tmp_path, split, check_size=False)
        assert images.dtype == torch.uint8 and images.shape == (len(written[split][0]), 28, 28)
        assert labels.dtype == torch.int64
        assert np.array_equal(images.numpy(), written[split][0])
        assert np.array_equal(labels.numpy(), written[split][1])
    ds = FashionMNIST(tmp_path, "test", transform=lambda x: x.float() / 255, check_size=False)
    image, label = ds[2]
    assert len(ds) == 3 and image.dtype == torch.float32 and label == int(written["test"][1][2])


def test_fashion_mnist_checks_the_published_split_size(tmp_path):
    write_fashion_mnist(tmp_path, n_train=7, n_test=3)
    with pytest.raises(FormatError, match="7 images, expected 60000"):
        load_fashion_mnist(tmp_path, "train")


def test_idx_wrong_magic_is_named(tmp_path):
    write_fashion_mnist(tmp_path)
    labels_as_images = tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(
        FormatError, match=rf"train-labels.*magic number {LABELS_MAGIC}.*{IMAGES_MAGIC}"
    ):
        read_idx_images(labels_as_images)


def test_idx_truncated_data_is_refused(tmp_path):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8), IMAGES_MAGIC)
    (tmp_path / "short.gz").write_bytes(gz(data[:-5]))
    with pytest.raises(FormatError, match=r"shape \[4, 28, 28\].*3131 bytes"):
        read_idx_images(tmp_path / "short.gz")
    (tmp_path / "labels").write_bytes(idx_bytes(np.arange(3, dtype=np.uint8), LABELS_MAGIC))
    assert read_idx_labels(tmp_path / "labels").tolist() == [0, 1, 2]  # plain (not .gz) works too


def test_images_and_labels_counts_must_agree(tmp_path):
    write_fashion_mnist(tmp_path, n_train=5)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gz(idx_bytes(np.zeros(4, np.uint8), LABELS_MAGIC))
    )
    with pytest.raises(FormatError, match="5 images but .* 4 labels"):
        load_fashion_mnist(tmp_path, "train", check_size=False)


# --- language-model corpora ----------------------------------------------------------------------


def _write_lm(root, names):
    write_lines(root / names[0], [" the cat sat ", " the <unk> ran", ""])
    write_lines(root / names[1], ["the dog sat"])
    write_lines(root / names[2], ["cat ran", "mat"])


def test_corpus_counts_eos_and_unknowns(tmp_path):
    _write_lm(tmp_path, ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"])
    c = load_ptb(tmp_path)
    assert c.vocab.idx2word == ["the", "cat", "sat", EOS, UNK, "ran"]
    assert c.vocab.decode(c.train) == ["the", "cat", "sat", EOS, "the", UNK, "ran", EOS, EOS]
    assert c.vocab.decode(c.valid) == ["the", UNK, "sat", EOS]  # 'dog' is not in train
    assert c.vocab.decode(c.test) == ["cat", "ran", EOS, UNK, EOS]
    assert c.train.dtype == torch.long and c.train.dim() == 1


def test_wikitext2_file_names_and_unk_added_when_train_lacks_it(tmp_path):
    write_lines(tmp_path / "wiki.train.tokens", [" = Title = ", " a b "])
    write_lines(tmp_path / "wiki.valid.tokens", ["a z"])
    write_lines(tmp_path / "wiki.test.tokens", ["b"])
    c = load_wikitext2(tmp_path)
    assert c.vocab.idx2word == ["=", "Title", EOS, "a", "b", UNK]
    assert c.vocab.decode(c.valid) == ["a", UNK, EOS]


def test_encode_without_unk_names_the_word():
    with pytest.raises(KeyError, match="'z'"):
        Vocabulary(["a"]).encode(["z"])


def test_empty_training_split_is_refused(tmp_path):
    for n in ("t", "v", "s"):
        (tmp_path / n).write_text("")
    with pytest.raises(FormatError, match="empty"):
        load_corpus(tmp_path / "t", tmp_path / "v", tmp_path / "s")


def test_batchify_matches_pytorch_examples():
    data = torch.arange(26)
    b = batchify(data, 4)  # 26 // 4 = 6 steps; the last 2 tokens are dropped
    assert b.shape == (6, 4)
    assert b[:, 0].tolist() == list(range(6)) and b[:, 1].tolist() == list(range(6, 12))
    x, y = get_batch(b, 0, bptt=3)
    assert x.shape == y.shape == (3, 4) and torch.equal(y, b[1:4])
    x, y = get_batch(b, 4, bptt=3)  # clipped at the end
    assert x.shape == (1, 4) and torch.equal(y, b[5:6])
    with pytest.raises(ValueError):
        batchify(torch.arange(3), 4)


# --- parallel text -------------------------------------------------------------------------------


def test_multi30k_pairs(tmp_path):
    write_lines(tmp_path / "val.en.gz", ["A dog runs.", "Two men."], compress=True)
    write_lines(tmp_path / "val.de.gz", ["Ein Hund läuft.", "Zwei Männer."], compress=True)
    assert load_multi30k(tmp_path, "val", check_size=False) == [
        ("A dog runs.", "Ein Hund läuft."),
        ("Two men.", "Zwei Männer."),
    ]
    assert load_multi30k(tmp_path, "val", "de", "en", check_size=False)[0][0] == "Ein Hund läuft."
    with pytest.raises(FormatError, match="2 segments, expected 1014"):
        load_multi30k(tmp_path, "val")


def test_multi30k_mismatched_sides(tmp_path):
    write_lines(tmp_path / "train.en.gz", ["a", "b"], compress=True)
    write_lines(tmp_path / "train.de.gz", ["a"], compress=True)
    with pytest.raises(FormatError, match="2 lines but .* 1"):
        load_multi30k(tmp_path, "train", check_size=False)


def test_sgm_segments_are_unescaped_and_cleaned():
    segs = parse_segments(sgm_text({"d1": ["A &amp; B  &quot;x&quot;", " padded "], "d2": ["c"]}))
    assert [(s.docid, s.segid, s.text) for s in segs] == [
        ("d1", "1", 'A & B "x"'),
        ("d1", "2", "padded"),
        ("d2", "1", "c"),
    ]
    with pytest.raises(FormatError, match="no <seg>"):
        parse_segments("<srcset>\n</srcset>\n")


def test_newstest2014_pairs_and_alignment(tmp_path):
    (tmp_path / "newstest2014-deen-src.en.sgm").write_text(sgm_text({"d": ["Hello", "World"]}))
    (tmp_path / "newstest2014-deen-ref.de.sgm").write_text(sgm_text({"d": ["Hallo", "Welt"]}))
    assert load_newstest2014(tmp_path, check_size=False) == [("Hello", "Hallo"), ("World", "Welt")]
    (tmp_path / "newstest2014-deen-ref.de.sgm").write_text(sgm_text({"other": ["Hallo", "Welt"]}))
    with pytest.raises(FormatError, match="not aligned"):
        load_newstest2014(tmp_path, check_size=False)


def test_iwslt17_pairs_from_both_archives(tmp_path):
    en = iwslt_xml_text({"2507": ["So this is James.", "Hi."]}).encode()
    de = iwslt_xml_text({"2507": ["Das ist James.", "Hallo."]}).encode()
    (tmp_path / "en-de.tgz").write_bytes(
        tgz_bytes({"en-de/IWSLT17.TED.tst2017.en-de.en.xml": en, "en-de/README": b"r"})
    )
    (tmp_path / "de-en.tgz").write_bytes(tgz_bytes({"de-en/IWSLT17.TED.tst2017.de-en.de.xml": de}))
    pairs = load_iwslt17(tmp_path, check_size=False)
    assert pairs == [("So this is James.", "Das ist James."), ("Hi.", "Hallo.")]
    assert load_iwslt17(tmp_path, "de", "en", check_size=False)[1] == ("Hallo.", "Hi.")
    with pytest.raises(KeyError, match="tst2016"):
        load_iwslt17(tmp_path, year=2016, check_size=False)
