"""Translation (GNMT, Table 4): Multi30k at CPU scale, WMT16 En-De and De-En at the paper's scale.

Data come prepared by the workflow (``gradprune.data.translation.prepare``): sentencepiece ids of
both language sides of every split, the sentencepiece model, and the raw text of the evaluation
sets. The experiment's ``translation.source_lang`` / ``target_lang`` choose the direction: the
source side of every split is ``source_lang``'s, the references ``target_lang``'s.

Batches: ``batch_size`` sentence pairs, length-bucketed: each epoch's permutation (a pure function
of (seed, epoch)) is cut into chunks of ``BUCKET_BATCHES`` batches, each chunk is sorted by length
and cut into batches, and the batch order of the epoch is shuffled with the same generator. So the
batch of step t is a pure function of (seed, t) and resumed runs see the same batches.

Loss: :meth:`gradprune.models.gnmt.GNMT.loss` in the form ``translation.loss`` (TF NMT's sum over
each sentence's tokens averaged over sentences, or the per-token mean); label smoothing is
``train.label_smoothing``. The training log's ``loss`` is in that form.

Data parallel (torchrun, ``DistContext``): rank ``r`` of ``W`` takes the pairs ``r::W`` of each
(length-sorted) global batch, and DDP averages the ranks' gradients. The loss is normalised by the
global batch so that this average is the update of the whole batch: ``sum_per_sentence`` divides by
the rank's ``batch_size / W`` sentences (what it does anyway), ``mean_per_token`` by ``1 / W`` of the
global batch's target tokens (counted before sharding: the global batch is known on every rank).

Evaluation: ``split="test"`` decodes every configured test set (beam search with the GNMT length
penalty, or greedy), detokenizes with sentencepiece and scores against the raw references
(:func:`gradprune.translation.scoring.score_corpus`: ``bleu``, sacreBLEU on detokenized text, the
primary score; ``bleu_tok``, Moses-tokenized BLEU as TF NMT and the paper; ``chrf``); the headline
metrics are those of the first test set; the other test sets, the signatures and which BLEU the
paper comparison uses are in :attr:`last_eval_info` (written to ``metrics.json`` under ``scoring``).
``split="valid"`` (training curves) decodes the first ``curve_examples`` validation sentences
greedily.
"""

from __future__ import annotations

import json

import torch
from safetensors import safe_open
from torch import nn

from gradprune import seeding
from gradprune.data.translation import (
    BOS,
    EOS,
    LAYOUT,
    PAD,
    load_sentencepiece,
    resolve_tests,
    settings,
)
from gradprune.models import build_model
from gradprune.tasks.base import Task, epoch_permutation
from gradprune.translation.decode import beam_search, greedy_decode
from gradprune.translation.scoring import PAPER_BLEU_NOTE, score_corpus

BUCKET_BATCHES = 32


def pad_batch(seqs: list[torch.Tensor], prefix: int | None = None, suffix: int | None = None):
    """Right-padded (B, T) long tensor and lengths of ``[prefix] + seq + [suffix]``."""
    extra = (prefix is not None) + (suffix is not None)
    lengths = torch.tensor([len(s) + extra for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = s.long()
        if prefix is not None:
            row = torch.cat([row.new_tensor([prefix]), row])
        if suffix is not None:
            row = torch.cat([row, row.new_tensor([suffix])])
        out[i, : len(row)] = row
    return out, lengths


class Ragged:
    """Flat ids + offsets; item i is ids[offsets[i]:offsets[i+1]] (no per-sentence tensors)."""

    def __init__(self, ids: torch.Tensor, offsets: torch.Tensor) -> None:
        self.ids, self.offsets = ids, offsets
        self.lengths = offsets[1:] - offsets[:-1]

    def __len__(self) -> int:
        return len(self.lengths)

    def get(self, indices) -> list[torch.Tensor]:
        off = self.offsets
        return [self.ids[int(off[i]) : int(off[i + 1])] for i in indices]


class TranslationTask(Task):
    metric_names = ("bleu", "bleu_tok", "chrf")
    curve_metric = "bleu"
    supports_sharding = True

    def __init__(self, experiment, data_files, device, seed, dist=None):
        super().__init__(experiment, data_files, device, seed, dist)
        self.cfg = settings(experiment)
        if self.cfg["curve_examples"] == 0:
            self.curve_metric = ""
        self.src_lang, self.tgt_lang = self.cfg["source_lang"], self.cfg["target_lang"]
        self.sp = load_sentencepiece(data_files["spm"])
        self.vocab_size = self.sp.get_piece_size()
        with open(data_files["text"], encoding="utf-8") as fh:
            self.text = json.load(fh)
        if self.text.get("meta", {}).get("layout") != LAYOUT:
            raise ValueError(f"{data_files['text']} was prepared by an older gradprune (one direction "
                             f"only); delete its folder and run the prepare step again")
        self.test_sets = resolve_tests(experiment["dataset"], self.cfg["test_sets"])
        missing = [t for t in self.test_sets if t not in self.text["tests"]]
        if missing:
            raise ValueError(f"test sets {missing} are not in {data_files['text']}; prepare again")
        with safe_open(str(data_files["prepared"]), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        self._tensors = tensors
        src, tgt = self._side("train", self.src_lang), self._side("train", self.tgt_lang)
        n = len(src)
        subset = experiment["train"]["train_subset"]
        idx = torch.arange(min(n, subset) if subset else n)
        # TF NMT (iterator_utils.get_iterator): pairs with an empty side are dropped, the others
        # truncated to src_max_len / tgt_max_len tokens (max_train_len), not dropped
        self.max_len = self.cfg["max_train_len"]
        keep = (src.lengths[idx] > 0) & (tgt.lengths[idx] > 0)
        self.train_index = idx[keep]
        self.train_src, self.train_tgt = src, tgt
        self.batch_size = experiment["train"]["batch_size"]
        if len(self.train_index) < self.batch_size:
            raise ValueError(f"{len(self.train_index)} training pairs (without those with an empty "
                             f"side) is less than one batch of {self.batch_size}")
        self.eval_batch_size = experiment["train"]["eval_batch_size"]
        self.label_smoothing = experiment["train"]["label_smoothing"]
        self._epoch_batches: tuple[int, list[torch.Tensor]] | None = None
        self.last_eval_info: dict = {}

    # -- training ----------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_index) // self.batch_size

    def build_model(self, size) -> nn.Module:
        args = dict(self.experiment["model_args"])
        return build_model(self.experiment["model"], size=int(size), vocab_size=self.vocab_size,
                           pad_id=PAD, **args)

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """The batches (positions into ``train_index``) of one epoch, in training order."""
        if self._epoch_batches is not None and self._epoch_batches[0] == epoch:
            return self._epoch_batches[1]
        n, bs = len(self.train_index), self.batch_size
        order = epoch_permutation(n, self.seed, epoch)[: self.steps_per_epoch * bs]
        ids = self.train_index[order]
        length = torch.maximum(self.train_src.lengths[ids], self.train_tgt.lengths[ids])
        length = length.clamp(max=self.max_len)  # the lengths it trains on
        chunk = bs * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[torch.argsort(length[start : start + chunk], stable=True)]
            batches += list(part.split(bs))
        gen = seeding.generator(seeding.bucket_order_seed(self.seed, epoch))
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        self._epoch_batches = (epoch, batches)
        return batches

    def batch_pairs(self, step: int) -> torch.Tensor:
        """Indices of the training pairs of the global batch of ``step``."""
        epoch, i = divmod(step, self.steps_per_epoch)
        return self.train_index[self.epoch_batches(epoch)[i]]

    def batch(self, step: int):
        """(src, src_len, tgt_in, tgt_out) of step ``step``: this rank's pairs under DDP, each
        side truncated to ``max_train_len`` tokens."""
        ids = self.dist.shard(self.batch_pairs(step)).tolist()
        src, src_len = pad_batch([s[: self.max_len] for s in self.train_src.get(ids)])
        tgt = [t[: self.max_len] for t in self.train_tgt.get(ids)]
        tgt_in, _ = pad_batch(tgt, prefix=BOS)
        tgt_out, _ = pad_batch(tgt, suffix=EOS)
        dev = self.device
        return src.to(dev), src_len, tgt_in.to(dev), tgt_out.to(dev)

    def target_tokens(self, pairs: torch.Tensor) -> int:
        """Target tokens the loss counts for ``pairs``: each truncated target and its EOS."""
        return int(self.train_tgt.lengths[pairs].clamp(max=self.max_len).sum()) + len(pairs)

    def train_loss(self, model, step):
        src, src_len, tgt_in, tgt_out = self.batch(step)
        net = getattr(model, "module", model)  # the GNMT inside the DDP wrapper
        loss = net.loss(src, src_len, tgt_in, tgt_out, self.label_smoothing,
                        form=self.cfg["loss"], forward=model)
        if self.dist.enabled and self.cfg["loss"] == "mean_per_token":
            # this rank's token mean -> its tokens' loss over 1/W of the global batch's tokens,
            # both counted on the host (no wait for the device)
            pairs = self.batch_pairs(step)
            local = self.target_tokens(self.dist.shard(pairs))
            loss = loss * (local * self.dist.world_size / self.target_tokens(pairs))
        return loss

    def _side(self, key: str, lang: str) -> Ragged:
        """The ids of language ``lang`` of split ``key`` (``train``, ``valid``, ``test.<name>``)."""
        return Ragged(self._tensors[f"{key}.{lang}_ids"], self._tensors[f"{key}.{lang}_offsets"])

    # -- evaluation --------------------------------------------------------------------------
    def _sources(self, key: str) -> Ragged:
        return self._side(key, self.src_lang)

    @torch.no_grad()
    def translate(self, model, sources: Ragged, limit: int | None, greedy: bool) -> list[str]:
        """Detokenized translations of the first ``limit`` sources (original order)."""
        n = len(sources) if limit is None else min(limit, len(sources))
        order = sorted(range(n), key=lambda i: int(sources.lengths[i]))
        cfg = self.cfg
        out: list[str] = [""] * n
        was_training = model.training
        model.eval()
        bs = self.eval_batch_size if greedy else max(1, self.eval_batch_size // cfg["beam_size"])
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            seqs = [s if len(s) else s.new_tensor([EOS]) for s in sources.get(idx)]
            src, src_len = pad_batch(seqs)
            src = src.to(self.device)
            if greedy:
                hyps = greedy_decode(model, src, src_len, BOS, EOS, cfg["max_decode_len"])
            else:
                hyps = beam_search(model, src, src_len, BOS, EOS, cfg["beam_size"],
                                   cfg["length_penalty"], cfg["max_decode_len"])
            for i, h in zip(idx, hyps):
                out[i] = self.sp.decode(h)
        model.train(was_training)
        return out

    def curve_size(self, limit: int) -> int:
        return min(limit, self.cfg["curve_examples"], len(self.text["valid"][self.tgt_lang]))

    def evaluate(self, model, split="test", limit=None):
        if split == "valid":
            n = self.cfg["curve_examples"] if limit is None else min(limit, self.cfg["curve_examples"])
            refs = self.text["valid"][self.tgt_lang][:n]
            hyps = self.translate(model, self._sources("valid"), n, greedy=True)
            scores = score_corpus(hyps, refs, self.tgt_lang)
            return {m: scores[m] for m in self.metric_names}
        if split != "test":
            raise ValueError(f"unknown split {split!r}")
        greedy = self.cfg["decode"] == "greedy"
        test_limit = self.cfg["test_limit"] if limit is None else limit
        results = {}
        for name in self.test_sets:
            sources, refs = (self.text["tests"][name][lang] for lang in (self.src_lang, self.tgt_lang))
            n = len(refs) if test_limit is None else min(len(refs), test_limit)
            hyps = self.translate(model, self._sources(f"test.{name}"), n, greedy)
            scores = score_corpus(hyps, refs[:n], self.tgt_lang)
            results[name] = {**scores, "sentences": n, "examples": [
                {"src": s, "ref": r, "hyp": h} for s, r, h in zip(sources[:3], refs[:3], hyps[:3])]}
        headline = self.test_sets[0]
        self.last_eval_info = {
            "test_set": headline,
            "direction": f"{self.src_lang}-{self.tgt_lang}",
            **{f"{m}_signature": results[headline][f"{m}_signature"] for m in self.metric_names},
            "paper_metric": "bleu_tok",
            "paper_metric_note": PAPER_BLEU_NOTE,
            "decode": {k: self.cfg[k] for k in ("decode", "beam_size", "length_penalty", "max_decode_len")},
            "detokenized": "sentencepiece decode; references are the raw test-set text",
            "loss": self.cfg["loss"],
            "vocab_size": self.vocab_size,
            "test_sets": results,
        }
        return {m: results[headline][m] for m in self.metric_names}
