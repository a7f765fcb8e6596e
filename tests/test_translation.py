"""Decoding and scoring: beam search at beam 1 is greedy; BLEU of references is 100; data prep."""

import pytest
import torch

from gradprune.data.translation import pack, raw_files, resolve_tests, unpack
from gradprune.models.gnmt import gnmt
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
    s = score_corpus(refs, refs, "de")
    assert s["bleu"] == pytest.approx(100.0)
    assert s["bleu_tok"] == pytest.approx(100.0)
    assert s["chrf"] == pytest.approx(100.0)
    assert "tok:13a" in s["bleu_signature"] and "version:" in s["bleu_signature"]
    assert score_corpus(["völlig anders"], ["Ein Mann fährt Fahrrad."], "de")["bleu"] < 10


def test_detokenized_and_tokenized_bleu_worked_out_by_hand():
    """Two sentences; every n-gram order has matches, so sacreBLEU's default smoothing does not
    act and both scores are BP * (p1 p2 p3 p4) ** (1/4).

    sacreBLEU 13a keeps "doesn't" / "It's" whole and splits the final period:
      hyp 1  The cat doesn't sit on a mat .    (8)   ref 1  The cat doesn't sit on the mat . (8)
      hyp 2  It's raining .                    (3)   ref 2  It's raining today .             (4)
      1-grams 7/8 + 3/3 = 10/11 (only "a" misses); 2-grams 5/7 + 1/2 = 6/9 ("on a", "a mat",
      "raining ." miss); 3-grams 3/6 + 0/1 = 3/7; 4-grams 2/5 + 0/0 = 2/5 (hyp 2 has none).
      BP = exp(1 - 12/11); product 10/11 * 6/9 * 3/7 * 2/5 = 8/77.
    Moses (tokenizer.perl -l en) splits "doesn't" into "doesn &apos;t" and "It's" into
    "It &apos;s":
      hyp 1  The cat doesn &apos;t sit on a mat .  (9)   hyp 2  It &apos;s raining .  (4)
      ref lengths 9 and 5; 1-grams 8/9 + 4/4 = 12/13; 2-grams 6/8 + 2/3 = 8/11; 3-grams
      4/7 + 1/2 = 5/9; 4-grams 3/6 + 0/1 = 3/7. BP = exp(1 - 14/13); product 160/1001.
    """
    import math

    hyps = ["The cat doesn't sit on a mat.", "It's raining."]
    refs = ["The cat doesn't sit on the mat.", "It's raining today."]
    s = score_corpus(hyps, refs, "en")
    assert s["bleu"] == pytest.approx(100 * math.exp(1 - 12 / 11) * (8 / 77) ** 0.25)  # 51.84
    assert s["bleu_tok"] == pytest.approx(100 * math.exp(1 - 14 / 13) * (160 / 1001) ** 0.25)  # 58.55
    assert s["bleu_tok_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:none|smooth:none|")
    assert s["bleu_tok_signature"].endswith("|pretok:moses-en+sacremoses.0.2.0")
    # No smoothing, as TF NMT's compute_bleu: an order with no match (here 4-grams) gives 0;
    # sacreBLEU's default (exp smoothing) does not.
    unmatched = score_corpus(["It's raining hard today."], ["It's raining today."], "en")
    assert unmatched["bleu_tok"] == 0.0 and unmatched["bleu"] > 0.0


def test_moses_tokenization_follows_the_target_language():
    from gradprune.translation.scoring import moses_tokenize

    assert moses_tokenize("It's raining.", "en") == "It &apos;s raining ."
    assert moses_tokenize("Geht's dir gut?", "de") == "Geht &apos; s dir gut ?"
    assert moses_tokenize('Ein "Test" & mehr', "de") == "Ein &quot; Test &quot; &amp; mehr"


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
    wmt = [f.file for f in raw_files("wmt16", ["newstest2015", "newstest2014"])]
    assert wmt == ["training-parallel-europarl-v7.tgz", "training-parallel-commoncrawl.tgz",
                   "training-parallel-nc-v11.tgz", "wmt19-dev.tgz",
                   "newstest2014-deen-src.en.sgm", "newstest2014-deen-ref.de.sgm"]


def test_wmt16_files_are_the_published_archives_with_their_sha256():
    """The paper preset's WMT16 data: the archives themselves are registry files (canonical URL,
    size, sha256 as tensorflow_datasets and Hugging Face publish them), so they are downloaded
    and verified like any other file, and a mirror holds them under the same names."""
    from gradprune.data.registry import default_registry

    reg = default_registry()
    for f in raw_files("wmt16", ["newstest2015"]):
        e = reg.get(f.dataset, f.file)
        assert e.url.startswith("http://") and e.url.endswith(".tgz") and e.member is None
        assert len(e.sha256) == 64 and e.bytes > 10_000_000
    assert reg.get("wmt16", "wmt19-dev.tgz").url == "http://data.statmt.org/wmt19/translation-task/dev.tgz"


def _wmt16_archives(root):
    """Synthetic archives with the real member names (CommonCrawl-style control characters in a
    line must not split it) and the real newstest sizes."""
    from tests.fixtures.data_formats import sgm_text, tgz_bytes

    from gradprune.data.parallel_text import NEWSTEST_SIZES, WMT16_CORPORA, WMT_DEV_ARCHIVE

    root.mkdir(parents=True)
    for corpus, (archive, member) in WMT16_CORPORA.items():
        en = [f"{corpus} sentence {i}\x0b with a tab\u2028 inside" for i in range(5)]
        de = [f"{corpus} Satz {i}" for i in range(5)]
        (root / archive).write_bytes(tgz_bytes({
            member.format(lang="en"): ("\n".join(en) + "\n").encode(),
            member.format(lang="de"): ("\n".join(de) + "\n").encode(),
            "README": b"other members are skipped"}))
    n13, n15 = NEWSTEST_SIZES["newstest2013"], NEWSTEST_SIZES["newstest2015"]
    docs_de = {"d1": [f"Nachricht {i} &amp; mehr" for i in range(n15)]}
    docs_en = {"d1": [f"news {i} &amp; more" for i in range(n15)]}
    (root / WMT_DEV_ARCHIVE).write_bytes(tgz_bytes({
        "dev/newstest2013.en": "".join(f"line {i}\n" for i in range(n13)).encode(),
        "dev/newstest2013.de": "".join(f"Zeile {i}\n" for i in range(n13)).encode(),
        "dev/newstest2015-deen-src.de.sgm": sgm_text(docs_de, "newstest2015").encode(),
        "dev/newstest2015-deen-ref.en.sgm": sgm_text(docs_en, "newstest2015").encode()}))


def test_wmt16_pairs_are_read_inside_the_archives(tmp_path):
    from gradprune.data.translation import load_eval, load_train

    _wmt16_archives(tmp_path / "wmt16")
    train = load_train(tmp_path, "wmt16", "en", "de")
    assert len(train) == 15
    assert train[0] == ("europarl-v7 sentence 0\x0b with a tab\u2028 inside", "europarl-v7 Satz 0")
    assert train[-1] == ("news-commentary-v11 sentence 4\x0b with a tab\u2028 inside",
                         "news-commentary-v11 Satz 4")
    dev = load_eval(tmp_path, "wmt16", "newstest2013", "en", "de")
    assert len(dev) == 3000 and dev[7] == ("line 7", "Zeile 7")
    # en->de reads the de-en files the other way round; SGM entities are unescaped.
    test = load_eval(tmp_path, "wmt16", "newstest2015", "en", "de")
    assert len(test) == 2169 and test[3] == ("news 3 & more", "Nachricht 3 & mehr")
    assert load_eval(tmp_path, "wmt16", "newstest2015", "de", "en")[3] == ("Nachricht 3 & mehr",
                                                                           "news 3 & more")


def test_wmt16_archive_without_the_member_names_it(tmp_path):
    from tests.fixtures.data_formats import tgz_bytes

    from gradprune.data.translation import load_train

    _wmt16_archives(tmp_path / "wmt16")
    (tmp_path / "wmt16" / "training-parallel-nc-v11.tgz").write_bytes(tgz_bytes({"x": b"y"}))
    with pytest.raises(KeyError, match="news-commentary-v11.de-en.en.*registered archive"):
        load_train(tmp_path, "wmt16", "en", "de")


def _task(files: dict, source: str, target: str, **translation):
    from tests.workflow_helpers import validated_experiment

    from gradprune.tasks.translation import TranslationTask

    # The paper's WMT16 experiment at toy scale (validated: schema defaults filled in).
    exp = validated_experiment(
        "paper", "gnmt-wmt16-ende", model_args={"num_layers": 2, "dropout": 0.0},
        train={"batch_size": 5, "eval_batch_size": 8},
        translation={"source_lang": source, "target_lang": target, "test_sets": ["newstest2015"],
                     "beam_size": 2, "max_decode_len": 6, "curve_examples": 4, "test_limit": 4,
                     **translation})
    return TranslationTask(exp, files, "cpu", seed=0)


@pytest.fixture(scope="module")
def wmt16_prepared(tmp_path_factory):
    """One prepare of the synthetic WMT16 archives (both language sides), for both directions."""
    from gradprune.data.translation import prepare

    tmp = tmp_path_factory.mktemp("wmt16")
    _wmt16_archives(tmp / "raw" / "wmt16")
    prepare(tmp / "raw", tmp / "prepared", "wmt16", ["newstest2015"], vocab_size=60)
    return {name: tmp / "prepared" / file for name, file in
            {"spm": "spm.model", "prepared": "data.safetensors", "text": "text.json"}.items()}


def test_de_en_and_en_de_read_the_same_prepared_files(wmt16_prepared):
    """De->En takes the German side as source and the English as reference, En->De the reverse,
    from one prepared dataset (one subword model); both see the same sentence pairs per step."""
    deen, ende = _task(wmt16_prepared, "de", "en"), _task(wmt16_prepared, "en", "de")
    sp = deen.sp

    def ids(ragged, i):
        return ragged.get([i])[0].tolist()

    assert ids(deen.train_src, 2) == sp.encode("europarl-v7 Satz 2") == ids(ende.train_tgt, 2)
    assert sp.decode(ids(deen.train_tgt, 2)).startswith("europarl-v7 sentence 2")
    assert ids(ende.train_src, 2) == ids(deen.train_tgt, 2)
    # the batch of a step holds the same pairs, the sides swapped (targets end with EOS)
    src, src_len, _, tgt_out = deen.batch(0)
    src2, src_len2, _, tgt_out2 = ende.batch(0)
    for i in range(len(src)):
        assert src[i, : src_len[i]].tolist() == tgt_out2[i, : src_len[i]].tolist()
        assert tgt_out2[i, src_len[i]] == EOS
        assert src2[i, : src_len2[i]].tolist() == tgt_out[i, : src_len2[i]].tolist()
    test = "test.newstest2015"
    assert ids(deen._sources(test), 3) == sp.encode("Nachricht 3 & mehr")
    assert ids(ende._sources(test), 3) == sp.encode("news 3 & more")


def test_de_en_scores_english_references(wmt16_prepared):
    torch.manual_seed(0)
    deen = _task(wmt16_prepared, "de", "en")
    model = deen.build_model(8)
    metrics = deen.evaluate(model, "test")
    assert set(metrics) == {"bleu", "bleu_tok", "chrf"}
    info = deen.last_eval_info
    assert info["direction"] == "de-en" and info["paper_metric"] == "bleu_tok"
    assert info["bleu_tok_signature"].endswith("pretok:moses-en+sacremoses.0.2.0")
    example = info["test_sets"]["newstest2015"]["examples"][0]
    assert (example["src"], example["ref"]) == ("Nachricht 0 & mehr", "news 0 & more")
    assert set(deen.evaluate(model, "valid")) == {"bleu", "bleu_tok", "chrf"}


def test_the_task_trains_with_the_configured_loss(wmt16_prepared):
    torch.manual_seed(0)
    summed = _task(wmt16_prepared, "de", "en")  # the paper's (and the schema's default): TF NMT's form
    mean = _task(wmt16_prepared, "de", "en", loss="mean_per_token")
    model = summed.build_model(8)
    batch = summed.batch(0)
    tokens = int((batch[3] != 0).sum())
    torch.testing.assert_close(summed.train_loss(model, 0),
                               model.loss(*batch, form="mean_per_token") * tokens / len(batch[0]))
    torch.testing.assert_close(mean.train_loss(model, 0), model.loss(*batch, form="mean_per_token"))


def test_prepared_data_of_the_old_one_direction_layout_is_refused(wmt16_prepared, tmp_path):
    import json

    text = json.loads(wmt16_prepared["text"].read_text())
    del text["meta"]["layout"]
    (tmp_path / "text.json").write_text(json.dumps(text))
    with pytest.raises(ValueError, match="older gradprune.*prepare step again"):
        _task({**wmt16_prepared, "text": tmp_path / "text.json"}, "de", "en")
    with pytest.raises(ValueError, match="source_lang / target_lang"):
        _task(wmt16_prepared, "en", "en")
