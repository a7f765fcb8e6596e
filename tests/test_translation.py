"""Decoding and scoring: beam search at beam 1 is greedy; BLEU of references is 100; data prep."""

import pytest
import torch

from gradprune.models.gnmt import gnmt
from gradprune.translation.data import pack, raw_files, resolve_tests, unpack
from gradprune.translation.decode import beam_search, greedy_decode, length_penalty
from gradprune.translation.scoring import score_corpus

torch.set_num_threads(1)
BOS, EOS = 2, 3


def _model_and_batch(seed=0, vocab=30):
    torch.manual_seed(seed)
    m = gnmt(24, vocab_size=vocab, num_layers=2, dropout=0.0).eval()
    # A larger EOS bias so some hypotheses end early and others hit the length limit.
    with torch.no_grad():
        m.decoder.projection.weight[EOS] += 0.15
    src = torch.randint(4, vocab, (6, 9))
    lengths = torch.tensor([9, 8, 5, 3, 2, 1])
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    return m, src, lengths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    m, src, lengths = _model_and_batch(seed)
    greedy = greedy_decode(m, src, lengths, BOS, EOS, max_decode_len=12)
    for alpha in (0.0, 1.0):
        assert beam_search(m, src, lengths, BOS, EOS, beam_size=1, alpha=alpha, max_decode_len=12) == greedy


def test_beam_search_batched_equals_one_by_one_and_scores_at_least_greedy():
    m, src, lengths = _model_and_batch(3)
    batched = beam_search(m, src, lengths, BOS, EOS, beam_size=4, alpha=0.0, max_decode_len=12)
    for i in range(len(src)):
        n = int(lengths[i])
        single = beam_search(m, src[i : i + 1, :n], lengths[i : i + 1], BOS, EOS, beam_size=4,
                             alpha=0.0, max_decode_len=12)
        # the per-batch length limit depends on the longest source: compare within the same limit
        if 2 * n + 10 >= 12:
            assert single[0] == batched[i]
    # With alpha 0 the beam's best hypothesis is at least as probable as the greedy one.
    greedy = greedy_decode(m, src, lengths, BOS, EOS, max_decode_len=12)

    def logprob(i, toks):
        tgt = torch.tensor([[BOS] + toks])
        out = torch.tensor([toks + [EOS]])
        with torch.no_grad():
            lp = torch.log_softmax(m(src[i : i + 1], lengths[i : i + 1], tgt), -1)
        finished = len(toks) < 12
        idx = out if finished else out[:, :-1]
        return float(lp[0, : idx.shape[1]].gather(1, idx[0][:, None]).sum())

    for i in range(len(src)):
        if len(greedy[i]) < 12 and len(batched[i]) < 12:
            assert logprob(i, batched[i]) >= logprob(i, greedy[i]) - 1e-4


def test_length_penalty_is_gnmt():
    assert float(length_penalty(torch.tensor([1]), 1.0)) == pytest.approx(1.0)
    assert float(length_penalty(torch.tensor([7]), 0.6)) == pytest.approx((12 / 6) ** 0.6)


def test_bleu_of_references_against_themselves_is_100():
    refs = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee, nicht wahr?", "Hallo!"]
    s = score_corpus(refs, refs)
    assert s["bleu"] == pytest.approx(100.0)
    assert s["chrf"] == pytest.approx(100.0)
    assert "tok:13a" in s["bleu_signature"] and "version:" in s["bleu_signature"]
    assert score_corpus(["völlig anders"], ["Ein Mann fährt Fahrrad."])["bleu"] < 10


def test_pack_unpack_roundtrip():
    seqs = [[5, 6, 7], [], [9]]
    flat, off = pack(seqs)
    assert [t.tolist() for t in unpack(flat, off)] == seqs


def test_test_sets_and_raw_files():
    assert resolve_tests("multi30k", None) == ["test_2016_flickr"]
    assert resolve_tests("wmt16", None) == ["newstest2015", "newstest2014"]
    with pytest.raises(ValueError, match="not available"):
        resolve_tests("multi30k", ["newstest2015"])
    files = {(f.dataset, f.file) for f in raw_files("multi30k", ["test_2016_flickr", "iwslt17"])}
    assert ("multi30k", "train.en.gz") in files and ("iwslt17", "en-de.tgz") in files
    wmt = {f.file for f in raw_files("wmt16", ["newstest2015", "newstest2014"])}
    assert {"europarl-v7.de-en.en", "commoncrawl.de-en.de", "news-commentary-v11.de-en.de",
            "newstest2013-src.en.sgm", "newstest2015-ende-ref.de.sgm"} <= wmt


def test_unregistered_wmt16_file_fails_with_url_and_fix(tmp_path):
    from gradprune.data.errors import FetchError
    from gradprune.translation.workflow import fetch_unregistered

    out = tmp_path / "resources/data/wmt16/europarl-v7.de-en.en"
    with pytest.raises(FetchError, match="no registry row") as err:
        fetch_unregistered("wmt16", out.name, out, None, None, offline=True)
    assert "http://www.statmt.org/europarl/v7/de-en.tgz" in str(err.value)
    assert "registry.tsv" in str(err.value) and not out.exists()
