"""Word-level language modelling: Zaremba et al. (2014) LSTMs on PTB (or WikiText-2), Table 3.

Data. The workflow's prepare step (:func:`gradprune.data.lm.prepare_lm_corpus`) encodes the three splits once into
one safetensors file: int64 streams ``train``/``valid``/``test`` (every line ends with ``<eos>``;
vocabulary of the training split, 10,000 types on PTB) and the vocabulary itself (metadata
``vocab``: the words in id order, one per line).

Training batches (truncated BPTT, as Zaremba's reader). The training stream is cut into
``batch_size`` contiguous columns (:func:`~gradprune.data.lm_corpus.batchify`); optimizer step
``step`` reads window ``i = step % steps_per_epoch`` of length ``bptt`` (inputs rows
``[i*bptt, (i+1)*bptt)``, targets shifted by one token). Only full windows are used:
``steps_per_epoch = (len(train) // batch_size - 1) // bptt`` (Zaremba's ``epoch_size``), e.g. PTB
with batch 20 / BPTT 35: ``(929,589 // 20 - 1) // 35 = 1327``; with BPTT 20: 2323. The LSTM's
hidden state is carried from one window to the next (detached: gradients are truncated at window
boundaries) and reset to zeros at the start of every epoch. The carried state is part of
:meth:`state_dict`, so a run resumed from a checkpoint continues bitwise as an uninterrupted one
(CPU). Batches are a pure function of the step; the training stream is never shuffled (as Zaremba).

Data parallel (torchrun, ``DistContext``): rank ``r`` of ``W`` trains the columns ``r::W`` of every
window (``batch_size`` must divide by ``W``) and carries their hidden state; after each step the
ranks all-gather it, so every rank (and rank 0's checkpoint) holds the state of all columns, and a
run resumes on any number of processes. Each rank's loss is the mean over its own columns, and DDP
averages the gradients over the ranks: the update of the whole batch.

Loss scale. :meth:`LanguageModelTask.train_loss` is Zaremba's training loss: cross-entropy *summed*
over the ``bptt`` time steps of a window and averaged over the batch (his Torch code and the
TensorFlow ``ptb_word_lm`` both do this), so the presets' SGD lr 1.0 and clip norms 5 / 10 are his
numbers as they stand. (A per-token mean loss would need lr ``bptt`` x 1.0 and clip / ``bptt`` for
the same updates: pytorch/examples' lr 20 and clip 0.25 are that.) The training log's ``loss`` is
therefore per window: divide by ``bptt`` for the per-token loss whose exp is the perplexity.

Models. ``size`` is ``"small"``/``"medium"``/``"large"`` or a number of hidden units. A number
equal to a preset's units (200/650/1500) takes that preset's dropout and init scale; any other
width (the scaled-down ``mini`` preset) takes them from ``model_args`` (``dropout``,
``init_scale``) or else from the preset nearest in units. ``model_args.dropout`` /
``model_args.init_scale`` override every size; ``model_args.per_size`` (``{size: {dropout, init_scale}}``)
overrides one size. On CUDA ``nn.LSTM`` runs the cuDNN kernel.

Evaluation (:meth:`LanguageModelTask.evaluate`). Perplexity = exp(mean per-token cross-entropy)
over the *whole* split stream, every one of its ``N - 1`` next-token targets counted exactly once,
with the hidden state carried through the stream (dropout off). With eval batch size ``B`` the
stream is cut into ``B`` contiguous columns of ``L = (N - 1) // B`` targets that overlap by one
token (column ``j`` reads tokens ``[jL, (j+1)L]``), and the ``(N - 1) - B L`` remaining targets are
scored by continuing the last column's hidden state with batch 1. ``B = 1`` (Zaremba's test
configuration) is the exact stream perplexity; ``B > 1`` only starts ``B - 1`` columns from a zero
state, which changes perplexity by a few hundredths on PTB's 82k/74k-token valid/test streams
while running many times faster on a CPU (see the presets for the batch size each one uses).
``limit`` (training curves) scores only the first ``limit`` targets of the stream the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gradprune.data.lm import load_lm_corpus
from gradprune.data.lm_corpus import batchify
from gradprune.models.lstm_lm import PRESETS, detach_hidden, lstm_lm
from gradprune.tasks.base import Task

# Length of the windows evaluation feeds through the model at once (no gradients, so any length
# gives the same numbers; this only trades memory for fewer Python iterations).
EVAL_CHUNK = 256


def model_hparams(size, model_args: dict | None = None) -> dict:
    """Keyword arguments of :func:`~gradprune.models.lstm_lm.lstm_lm` for ``size``."""
    args = dict(model_args or {})
    per_size = args.pop("per_size", {}) or {}
    if isinstance(size, str) and size in PRESETS:
        preset, hidden = size, PRESETS[size][0]
    else:
        hidden = int(size)
        if float(size) != hidden or hidden < 1:
            raise ValueError(f"LSTM size must be small/medium/large or a number of units, got {size!r}")
        # the preset with these units, else the nearest one in units (dropout/init scale defaults)
        preset = min(PRESETS, key=lambda k: (abs(PRESETS[k][0] - hidden), PRESETS[k][0]))
    out = {"size": preset, "hidden": hidden}
    for key in ("dropout", "init_scale", "num_layers"):
        if key in args:
            out[key] = args.pop(key)
    out.update(per_size.get(str(size), {}))
    if args:
        raise ValueError(f"unknown lstm_lm model_args {sorted(args)}; known: dropout, init_scale, "
                         "num_layers, per_size")
    return out


class LanguageModelTask(Task):
    metric_names = ("test_perplexity", "val_perplexity")
    curve_metric = "val_perplexity"
    supports_sharding = True

    def __init__(self, experiment, data_files, device, seed, dist=None):
        super().__init__(experiment, data_files, device, seed, dist)
        streams, self.vocab = load_lm_corpus(data_files["prepared"])
        tr = experiment["train"]
        self.batch_size = tr["batch_size"]
        self.bptt = tr["bptt"]
        self.eval_batch_size = tr["eval_batch_size"]
        subset = tr["train_subset"]  # first N tokens of the training stream (tests)
        self.train_data = batchify(streams["train"][:subset], self.batch_size).to(self.device)
        self.streams = {"valid": streams["valid"], "test": streams["test"]}
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training stream ({len(self.train_data)} rows of batch {self.batch_size}) is "
                f"shorter than one BPTT window of {self.bptt} + 1 tokens"
            )
        # Hidden state carried between training windows: the state after step `_next_step - 1`.
        self._hidden: tuple[torch.Tensor, torch.Tensor] | None = None
        self._next_step = 0

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def steps_per_epoch(self) -> int:
        return (len(self.train_data) - 1) // self.bptt

    def build_model(self, size) -> nn.Module:
        return lstm_lm(vocab_size=self.vocab_size,
                       **model_hparams(size, self.experiment["model_args"]))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each ``(bptt, batch_size)``, of optimizer step ``step`` (this rank's
        columns under DDP)."""
        i = (step % self.steps_per_epoch) * self.bptt
        x, y = self.train_data[i : i + self.bptt], self.train_data[i + 1 : i + 1 + self.bptt]
        return self.dist.shard(x, dim=1), self.dist.shard(y, dim=1)

    def hidden_for(self, model: nn.Module, step: int):
        """The state the window of ``step`` starts from (this rank's columns): zeros at an
        epoch's first window."""
        if step % self.steps_per_epoch == 0:
            # the DDP wrapper does not expose the model's methods
            return getattr(model, "module", model).init_hidden(self.batch_size // self.dist.world_size)
        if self._hidden is None or self._next_step != step:
            raise RuntimeError(
                f"LM task: step {step} continues the hidden state of step {step - 1}, but the task "
                f"holds the state after step {self._next_step - 1}; restore it with load_state_dict"
            )
        return tuple(self.dist.shard(h, dim=1).contiguous() for h in self._hidden)

    def train_loss(self, model, step):
        """Zaremba's loss: cross-entropy summed over the window's time steps, mean over the batch
        (``bptt`` x the per-token mean; divide by ``bptt`` for the per-token loss)."""
        x, y = self.batch(step)
        logits, hidden = model(x, self.hidden_for(model, step))
        self._hidden = tuple(self.dist.gather(h, dim=1) for h in detach_hidden(hidden))
        self._next_step = step + 1
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1)) * x.size(0)

    def state_dict(self) -> dict:
        hidden = None if self._hidden is None else [h.detach().cpu().clone() for h in self._hidden]
        return {"hidden": hidden, "next_step": self._next_step}

    def load_state_dict(self, state: dict) -> None:
        hidden = state.get("hidden")
        self._hidden = None if hidden is None else tuple(h.to(self.device) for h in hidden)
        self._next_step = int(state.get("next_step", 0))

    # -- evaluation -------------------------------------------------------------------------------

    @torch.no_grad()
    def stream_nll(self, model, stream: torch.Tensor, batch_size: int | None = None) -> tuple[float, int]:
        """(summed cross-entropy in nats, number of targets) over every next-token target of
        ``stream``, hidden state carried (see the module docstring for the batching)."""
        b = max(1, min(batch_size or self.eval_batch_size, stream.numel() - 1))
        n_targets = stream.numel() - 1
        if n_targets < 1:
            raise ValueError("a stream needs at least two tokens to score")
        L = n_targets // b
        inputs = stream[: b * L].view(b, L).t().to(self.device)
        targets = stream[1 : b * L + 1].view(b, L).t().to(self.device)
        total = 0.0
        hidden = model.init_hidden(b)
        for i in range(0, L, EVAL_CHUNK):
            logits, hidden = model(inputs[i : i + EVAL_CHUNK], hidden)
            total += float(F.cross_entropy(logits.view(-1, logits.size(-1)).float(),
                                           targets[i : i + EVAL_CHUNK].reshape(-1), reduction="sum"))
        rest = n_targets - b * L
        if rest:  # continue the last column (which ends at token b*L - 1) with batch 1
            h = tuple(t[:, -1:].contiguous() for t in hidden)
            tail_in = stream[b * L : n_targets].view(-1, 1).to(self.device)
            tail_tg = stream[b * L + 1 :].view(-1, 1).to(self.device)
            for i in range(0, rest, EVAL_CHUNK):
                logits, h = model(tail_in[i : i + EVAL_CHUNK], h)
                total += float(F.cross_entropy(logits.view(-1, logits.size(-1)).float(),
                                               tail_tg[i : i + EVAL_CHUNK].reshape(-1), reduction="sum"))
        return total, n_targets

    def curve_size(self, limit: int) -> int:
        return min(limit, len(self.streams["valid"]) - 1)  # next-token targets scored

    @torch.no_grad()
    def evaluate(self, model, split="test", limit=None):
        if split not in ("test", "valid"):
            raise ValueError(f"unknown split {split!r}")
        was_training = model.training
        model.eval()
        try:
            splits = ("valid",) if limit is not None else ("test", "valid")
            ppl = {}
            for s in splits:
                stream = self.streams[s] if limit is None else self.streams[s][: limit + 1]
                nll, n = self.stream_nll(model, stream)
                ppl[s] = math.exp(nll / n)
        finally:
            model.train(was_training)
        if limit is not None:  # the curves: validation perplexity only
            return {"val_perplexity": ppl["valid"]}
        return {"test_perplexity": ppl["test"], "val_perplexity": ppl["valid"]}
