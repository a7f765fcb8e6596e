"""GNMT teacher forcing: the upper decoder cells over the whole sequence against the step loop.

    python benchmarks/bench_gnmt_decoder.py                     # CPU, 256 units (a minute)
    python benchmarks/bench_gnmt_decoder.py --device cuda --units 1024 --batch 128

One forward and backward of the loss of a random batch (4+4 layers, sentences of ``--length``
pieces) through ``GNMT.forward`` (only the bottom decoder cell steps; each upper cell is one LSTM
call) and through the step loop it replaced (every cell at every step; written out below).
Rounds alternate between the two so that drift in the machine's load hits both; the table prints
median milliseconds and the ratio, and the largest difference of the two losses.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gradprune.models.gnmt import gnmt


def step_loop_logits(model, src, lengths, tgt_in):
    """The teacher forcing GNMT.forward did before (tests/test_gnmt_decoder.py holds the same)."""
    enc = model.encode(src, lengths)
    dec = model.decoder
    state, attention = model.start(enc)
    emb = dec.embedding(tgt_in)
    outputs = []
    for t in range(tgt_in.shape[1]):
        x, state, attention = dec.step(emb[:, t], state, attention, enc.keys, enc.memory, enc.mask)
        outputs.append(x)
    return dec.projection(torch.stack(outputs, dim=1))


def loss_of(logits, tgt):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="sum")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = gnmt(args.units, vocab_size=args.vocab, num_layers=4, dropout=0.0).to(device).train()
    src = torch.randint(4, args.vocab, (args.batch, args.length), device=device)
    lengths = torch.full((args.batch,), args.length)
    tgt = torch.randint(4, args.vocab, (args.batch, args.length), device=device)
    paths = {"sequence": lambda: model(src, lengths, tgt),
             "step loop": lambda: step_loop_logits(model, src, lengths, tgt)}
    times = {name: [] for name in paths}
    losses = {}
    for name, fn in paths.items():  # warm-up (cuDNN plans, allocator)
        loss_of(fn(), tgt).backward()
    for _ in range(args.rounds):
        for name, fn in paths.items():
            model.zero_grad(set_to_none=True)
            sync(device)
            start = time.perf_counter()
            loss = loss_of(fn(), tgt)
            loss.backward()
            sync(device)
            times[name].append(time.perf_counter() - start)
            losses[name] = float(loss.detach())
    med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    print(f"GNMT {args.units} units, 4+4 layers, batch {args.batch} x {args.length} pieces, "
          f"{device} ({args.threads} threads), median of {args.rounds} interleaved rounds:")
    for name, ms in med.items():
        print(f"  {name:10s} {ms:9.1f} ms per forward + backward")
    print(f"  step loop / sequence: {med['step loop'] / med['sequence']:.2f}x; "
          f"loss difference {abs(losses['sequence'] - losses['step loop']):.3g}")


if __name__ == "__main__":
    main()
