"""The CUDA path of every family (needs a GPU; CI has none, the device machine runs it).

For MobileNet (Fashion-MNIST), the Zaremba LSTM (PTB-like text) and GNMT (Multi30k-like pairs),
on synthetic data written here: a pruned run on CUDA with deterministic algorithms, interrupted
and resumed from its checkpoint, ends bitwise where an uninterrupted run ends; the masks hold
exactly round(s * n) zeros on the GPU; GNMT's beam search at beam 1 equals greedy decoding on the
GPU and CUDA decoding agrees with CPU decoding of the same weights.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from tests.fixtures.data_formats import write_fashion_mnist, write_lines
from tests.workflow_helpers import load_preset, validated_case

from gradprune.config import validate_config
from gradprune.counting import masks_sparsity
from gradprune.data.lm import prepare_lm_corpus
from gradprune.data.parallel_text import MULTI30K_SIZES
from gradprune.data.translation import BOS, EOS
from gradprune.data.translation import prepare as prepare_translation
from gradprune.data.vision import prepare_fashion_mnist
from gradprune.runner import configure_torch, make_pruner
from gradprune.seeding import seed_everything
from gradprune.tasks import build_task
from gradprune.tasks.translation import pad_batch
from gradprune.training.loop import TrainState, resume_if_possible, train_steps
from gradprune.training.optim import build_optimizer
from gradprune.translation.decode import beam_search, greedy_decode

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]

WORDS = ["a", "man", "woman", "dog", "runs", "sits", "on", "the", "red", "blue", "street", "park", "with", "ball"]
WÖRTER = ["ein", "mann", "frau", "hund", "läuft", "sitzt", "auf", "der", "roten", "blauen", "straße", "park", "mit", "ball"]


def _sentences(rng: random.Random, n: int) -> tuple[list[str], list[str]]:
    en, de = [], []
    for _ in range(n):
        ids = [rng.randrange(len(WORDS)) for _ in range(rng.randint(3, 9))]
        en.append(" ".join(WORDS[i] for i in ids) + " .")
        de.append(" ".join(WÖRTER[i] for i in ids) + " .")
    return en, de


def _vision(tmp):
    write_fashion_mnist(tmp / "raw", n_train=160, n_test=32)
    prepare_fashion_mnist(tmp / "raw", tmp / "fmnist.safetensors")
    exp = copy.deepcopy(load_preset("test")["experiments"]["mobilenet-fmnist"])
    exp["train"].update(total_steps=24, log_every=2, eval_every=100, checkpoint_every=5)
    exp["pruning"].update(begin_step=2, frequency=3, n_updates=5)
    return validated_case(exp, 0.25), {"prepared": tmp / "fmnist.safetensors"}, 0.25


def _lm(tmp):
    rng = random.Random(0)
    raw = tmp / "ptb"
    raw.mkdir()
    for split, n in (("train", 300), ("valid", 40), ("test", 40)):
        (raw / f"ptb.{split}.txt").write_text("\n".join(_sentences(rng, n)[0]) + "\n")
    prepare_lm_corpus("ptb", raw, tmp / "ptb.safetensors")
    exp = {"family": "lm", "dataset": "ptb", "model": "lstm_lm", "model_args": {"dropout": 0.3},
           "train": {"total_steps": 24, "batch_size": 4, "bptt": 7, "eval_batch_size": 1,
                     "optimizer": {"name": "sgd", "lr": 1.0}, "grad_clip_norm": 5.0,
                     "log_every": 2, "eval_every": 100, "checkpoint_every": 5},
           "pruning": {"begin_step": 2, "frequency": 3, "n_updates": 5}}
    return validated_case(exp, 32), {"prepared": tmp / "ptb.safetensors"}, 32


def _translation(tmp):
    rng = random.Random(1)
    root = tmp / "raw"
    for split in ("train", "val", "test_2016_flickr"):  # the reader checks Multi30k's sizes
        en, de = _sentences(rng, MULTI30K_SIZES[split])
        write_lines(root / "multi30k" / f"{split}.en.gz", en, compress=True)
        write_lines(root / "multi30k" / f"{split}.de.gz", de, compress=True)
    prepare_translation(root, tmp / "mt", "multi30k", ["test_2016_flickr"], vocab_size=100)
    exp = {"family": "translation", "dataset": "multi30k", "model": "gnmt",
           "model_args": {"num_layers": 3, "dropout": 0.2},
           "train": {"total_steps": 24, "batch_size": 16, "eval_batch_size": 16,
                     "optimizer": {"name": "adam", "lr": 0.003}, "grad_clip_norm": 5.0,
                     "log_every": 2, "eval_every": 100, "checkpoint_every": 5},
           "pruning": {"begin_step": 2, "frequency": 3, "n_updates": 5},
           "translation": {"vocab_size": 100, "beam_size": 4, "max_decode_len": 30,
                           "curve_examples": 0, "test_limit": 30}}
    files = {"spm": tmp / "mt" / "spm.model", "prepared": tmp / "mt" / "data.safetensors",
             "text": tmp / "mt" / "text.json"}
    return validated_case(exp, 32), files, 32


FAMILIES = {"vision": _vision, "lm": _lm, "translation": _translation}


def _fresh(exp, files, size, sparsity=0.8):
    task = build_task(exp, files, torch.device("cuda"), seed=0)
    seed_everything(0)
    model = task.build_model(size).cuda()
    opt = build_optimizer(model, exp["train"]["optimizer"])
    return TrainState(model, opt, make_pruner(exp, model, sparsity, optimizer=opt), task)


def _setup(name, tmp_path_factory):
    configure_torch(threads=1, deterministic=True)
    exp, files, size = FAMILIES[name](tmp_path_factory.mktemp(name))
    exp.setdefault("large", {"size": size, "sparsities": [0.0, 0.8]})
    exp.setdefault("description", f"CUDA check of the {name} family")
    config = {"preset": "test", "seeds": [0], "experiments": {"e": exp}}
    exp = validate_config(config)["experiments"]["e"]  # the defaults the runner would see
    return name, exp, files, size


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    return _setup(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def translation(tmp_path_factory):
    return _setup("translation", tmp_path_factory)


def test_resumed_pruned_run_on_cuda_is_bitwise_identical(family, tmp_path):
    name, exp, files, size = family
    total = exp["train"]["total_steps"]
    ref = _fresh(exp, files, size)
    train_steps(ref, exp["train"], total)

    ckpt = tmp_path / "checkpoint.pt"
    for stop in (7, 9):  # interrupted twice (mid pruning), then to the end
        state = _fresh(exp, files, size)
        resume_if_possible(state, ckpt)
        train_steps(state, exp["train"], total, ckpt, stop_after=stop)
    state = _fresh(exp, files, size)
    assert resume_if_possible(state, ckpt) and 0 < state.step < total
    train_steps(state, exp["train"], total, ckpt)

    assert state.step == total
    for (key, a), b in zip(ref.model.state_dict().items(), state.model.state_dict().values()):
        assert a.device.type == "cuda", key
        assert torch.equal(a, b), f"{name}: {key} differs after resume on CUDA"
    masks = state.pruner.masks()
    assert all(m.device.type == "cuda" for m in masks.values())
    assert masks_sparsity(masks) == pytest.approx(0.8, abs=0.005)
    params = dict(state.model.named_parameters())
    for key, mask in masks.items():
        assert int((params[key][~mask] != 0).sum()) == 0, f"{name}: pruned weights of {key} moved"


def test_gnmt_decoding_on_cuda_matches_greedy_and_cpu(translation):
    _, exp, files, size = translation
    state = _fresh(exp, files, size)
    train_steps(state, exp["train"], exp["train"]["total_steps"])
    model = state.model.eval()
    src = state.task._sources("test.test_2016_flickr")
    tokens, lengths = pad_batch(src.get(range(16)))
    on_gpu = tokens.cuda()
    greedy = greedy_decode(model, on_gpu, lengths, BOS, EOS, 30)
    assert beam_search(model, on_gpu, lengths, BOS, EOS, 1, 1.0, 30) == greedy
    beam = beam_search(model, on_gpu, lengths, BOS, EOS, 4, 1.0, 30)
    cpu_model = copy.deepcopy(model).cpu()
    cpu_beam = beam_search(cpu_model, tokens, lengths, BOS, EOS, 4, 1.0, 30)
    # float32 reductions differ between devices; near-ties may flip a token, rarely a sentence.
    assert sum(a == b for a, b in zip(beam, cpu_beam)) >= 14
    bleu = state.task.evaluate(model, "test")["bleu"]
    assert 0.0 <= bleu <= 100.0
