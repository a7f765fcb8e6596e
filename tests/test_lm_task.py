"""The language-model task: prepared corpus, BPTT batches, carried hidden state, resumption,
stream perplexity. Synthetic corpora (seconds); the real PTB counts when the mirror is present."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tests.workflow_helpers import SHARED_MIRROR, require_mirror, validated_experiment

from gradprune.data.lm import load_lm_corpus, prepare_lm_corpus
from gradprune.data.lm_corpus import EOS, load_ptb
from gradprune.models.lstm_lm import PRESETS
from gradprune.seeding import seed_everything
from gradprune.tasks.lm import LanguageModelTask, model_hparams
from gradprune.training.loop import TrainState, resume_if_possible, train_steps
from gradprune.training.optim import build_optimizer

torch.set_num_threads(1)

MIRROR = SHARED_MIRROR


def _write_corpus(root: Path, seed: int = 0) -> Path:
    """A synthetic PTB-layout folder: 30 word types, about 2,400 training tokens."""
    gen = torch.Generator().manual_seed(seed)
    words = [f"w{i}" for i in range(29)] + ["<unk>"]

    def lines(n):
        out = []
        for _ in range(n):
            k = int(torch.randint(3, 12, (1,), generator=gen))
            out.append(" ".join(words[int(i)] for i in torch.randint(0, 30, (k,), generator=gen)))
        return "\n".join(out) + "\n"

    root.mkdir(parents=True, exist_ok=True)
    (root / "ptb.train.txt").write_text(lines(300))
    (root / "ptb.valid.txt").write_text(lines(40) + "never_seen_word\n")
    (root / "ptb.test.txt").write_text(lines(45))
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    raw = _write_corpus(tmp / "raw")
    out = tmp / "corpus.safetensors"
    prepare_lm_corpus("ptb", raw, out)
    return raw, out


def _experiment(**train):
    """The mini preset's PTB experiment at toy scale (validated: schema defaults filled in)."""
    tr = {"total_steps": 10, "batch_size": 4, "bptt": 7, "eval_batch_size": 1,
          "optimizer": {"name": "sgd", "lr": 1.0}, "lr_schedule": {"name": "constant"},
          "grad_clip_norm": 5.0, "log_every": 2, "eval_every": 100, "checkpoint_every": 100}
    return validated_experiment("mini", "lstm-ptb", train={**tr, **train},
                                pruning={"begin_step": 1, "frequency": 1, "n_updates": 1},
                                model_args={"dropout": 0.3})


def _task(prepared, **train):
    return LanguageModelTask(_experiment(**train), {"prepared": prepared[1]}, "cpu", seed=0)


def test_prepared_file_holds_streams_and_vocabulary(prepared):
    raw, out = prepared
    streams, vocab = load_lm_corpus(out)
    corpus = load_ptb(raw)
    assert vocab.idx2word == corpus.vocab.idx2word
    for split in ("train", "valid", "test"):
        assert torch.equal(streams[split], getattr(corpus, split))
    # one <eos> per line; the unseen validation word became <unk>
    n_lines = len((raw / "ptb.train.txt").read_text().splitlines())
    assert int((streams["train"] == vocab.word2idx[EOS]).sum()) == n_lines
    assert streams["valid"][-2] == vocab.word2idx["<unk>"]


def test_batches_are_bptt_windows_and_a_pure_function_of_the_step(prepared):
    task = _task(prepared)
    n = load_lm_corpus(prepared[1])[0]["train"].numel()
    assert task.steps_per_epoch == (n // 4 - 1) // 7
    stream = load_lm_corpus(prepared[1])[0]["train"]
    columns = stream[: (n // 4) * 4].view(4, -1)
    for step in (0, 1, task.steps_per_epoch - 1, task.steps_per_epoch + 2):
        x, y = task.batch(step)
        i = (step % task.steps_per_epoch) * 7
        assert x.shape == y.shape == (7, 4)
        assert torch.equal(x, columns[:, i : i + 7].t())
        assert torch.equal(y, columns[:, i + 1 : i + 8].t())  # next token of the same column
    assert torch.equal(task.batch(1)[0], task.batch(1 + task.steps_per_epoch)[0])


def test_hidden_state_is_carried_detached_and_reset_each_epoch(prepared):
    task = _task(prepared)
    torch.manual_seed(0)
    model = task.build_model(16).eval()  # no dropout: the comparison below is exact
    spe = task.steps_per_epoch
    loss0 = task.train_loss(model, 0)
    x0, _ = task.batch(0)
    _, h_after0 = model(x0, model.init_hidden(4))
    assert all(torch.equal(a, b) for a, b in zip(task.state_dict()["hidden"], h_after0))
    assert not any(h.requires_grad for h in task._hidden)
    # step 1 starts from the state after step 0, not from zeros
    x1, y1 = task.batch(1)
    logits, _ = model(x1, h_after0)
    # Zaremba's loss: summed over the window's 7 time steps, mean over the batch
    expected = 7 * torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y1.reshape(-1))
    assert torch.equal(task.train_loss(model, 1), expected)
    # a step out of order is refused (a resumed run must restore the state first)...
    with pytest.raises(RuntimeError, match="hidden state"):
        task.train_loss(model, 5)
    # ... except an epoch's first window, which starts from zeros
    fresh = _task(prepared)
    assert torch.equal(fresh.train_loss(model, spe), loss0)


def test_resumed_run_is_bitwise_identical(prepared, tmp_path):
    """Dropout on, hidden carried, checkpoint mid-epoch and across an epoch boundary (CPU)."""
    # log_every 1: the loop's running mean of logged losses restarts on resume
    exp = _experiment(log_every=1)
    spe = LanguageModelTask(exp, {"prepared": prepared[1]}, "cpu", 0).steps_per_epoch
    total = spe + 5
    exp["train"]["total_steps"] = total

    def fresh_state():
        task = LanguageModelTask(exp, {"prepared": prepared[1]}, "cpu", 0)
        seed_everything(0)
        model = task.build_model(16)
        return TrainState(model, build_optimizer(model, exp["train"]["optimizer"]), None, task)

    ref = fresh_state()
    train_steps(ref, exp["train"], total)

    ckpt = tmp_path / "ckpt.pt"
    for stop in (3, spe - 1, 4):  # interrupted twice, then runs to the end
        state = fresh_state()
        resume_if_possible(state, ckpt)
        train_steps(state, exp["train"], total, ckpt, stop_after=stop)
    assert state.step == total
    for (name, a), b in zip(ref.model.state_dict().items(), state.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["loss"] for r in ref.logs.train] == [r["loss"] for r in state.logs.train]


def _context_free(model):
    """Zero recurrent weights and biases: h and c stay 0, so predictions ignore the history."""
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            p.zero_()
    return model


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 50])
def test_every_target_of_the_stream_counts_once(prepared, batch):
    task = _task(prepared)
    torch.manual_seed(1)
    model = _context_free(task.build_model(8)).eval()
    stream = task.streams["valid"]
    nll, n = task.stream_nll(model, stream, batch)
    assert n == stream.numel() - 1
    with torch.no_grad():
        logits, _ = model(stream[:-1].view(-1, 1))
        ref = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), stream[1:],
                                                reduction="sum")
    assert nll == pytest.approx(float(ref), rel=1e-5)


def test_batch_one_is_the_exact_stream_perplexity_with_carried_state(prepared):
    task = _task(prepared)
    torch.manual_seed(2)
    model = task.build_model(8).eval()
    stream = task.streams["test"]
    nll, n = task.stream_nll(model, stream, 1)
    with torch.no_grad():
        logits, _ = model(stream[:-1].view(-1, 1))  # one pass over the stream: full history
        ref = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), stream[1:])
    assert math.exp(nll / n) == pytest.approx(math.exp(float(ref)), rel=1e-5)
    metrics = task.evaluate(model, "test")
    assert set(metrics) == {"test_perplexity", "val_perplexity"}
    assert metrics["test_perplexity"] == pytest.approx(math.exp(float(ref)), rel=1e-5)
    assert set(task.evaluate(model, "valid", limit=40)) == {"val_perplexity"}
    assert model.training is False


def test_uniform_model_has_the_vocabulary_size_as_perplexity(prepared):
    task = _task(prepared, eval_batch_size=5)
    model = task.build_model(8)
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
    ppl = task.evaluate(model)
    assert ppl["test_perplexity"] == pytest.approx(task.vocab_size, rel=1e-5)
    assert ppl["val_perplexity"] == pytest.approx(task.vocab_size, rel=1e-5)
    assert model.training  # evaluate restores the mode


def test_model_sizes_follow_zaremba_presets():
    for name, (hidden, dropout, scale) in PRESETS.items():
        for size in (name, hidden):
            hp = model_hparams(size)
            assert (hp["size"], hp["hidden"]) == (name, hidden)
    assert model_hparams(400) == {"size": "small", "hidden": 400}  # nearest preset in units
    assert model_hparams(1000)["size"] == "medium"
    hp = model_hparams(650, {"dropout": 0.1, "per_size": {"650": {"dropout": 0.4}}})
    assert hp["dropout"] == 0.4
    assert model_hparams(200, {"dropout": 0.1})["dropout"] == 0.1
    with pytest.raises(ValueError, match="unknown lstm_lm model_args"):
        model_hparams(200, {"tied": True})
    with pytest.raises(ValueError, match="LSTM size"):
        model_hparams(2.5)


def test_built_model_uses_the_corpus_vocabulary(prepared):
    task = _task(prepared)
    model = task.build_model("small")
    assert model.embedding.weight.shape == (task.vocab_size, 200)
    assert model.decoder.weight.shape == (task.vocab_size, 200)
    assert model.drop.p == 0.3  # model_args.dropout overrides the preset


def test_real_ptb_steps_per_epoch(tmp_path):
    """Zaremba's epoch size for batch 20: 1327 windows of BPTT 35, 2323 of BPTT 20."""
    require_mirror(MIRROR / "ptb")
    out = tmp_path / "corpus.safetensors"
    counts = prepare_lm_corpus("ptb", MIRROR / "ptb", out)
    assert counts == {"vocab_size": 10_000, "train": 929_589, "valid": 73_760, "test": 82_430}
    exp = _experiment(batch_size=20, bptt=35)
    assert LanguageModelTask(exp, {"prepared": out}, "cpu", 0).steps_per_epoch == 1327
    exp = _experiment(batch_size=20, bptt=20)
    assert LanguageModelTask(exp, {"prepared": out}, "cpu", 0).steps_per_epoch == 2323
