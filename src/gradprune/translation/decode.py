"""Batched greedy and beam-search decoding of :class:`gradprune.models.gnmt.GNMT`.

Beam search follows TF NMT's ``BeamSearchDecoder``: every step each live hypothesis is extended by
every token, candidates are ranked by their log-probability divided by the GNMT length penalty
``((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016), and the ``beam_size`` best are kept per sentence.
A hypothesis that emitted EOS stays in the beam with its score frozen (its only continuation is EOS
at no cost, and its length stops growing), so finished and live hypotheses compete on the same
normalized score. With ``beam_size=1`` every candidate of a step has the same length, so the
ranking is the argmax of the log-probabilities: the result equals greedy decoding.
"""

from __future__ import annotations

import torch

__all__ = ["beam_search", "decode_limit", "greedy_decode", "length_penalty"]


def length_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    if alpha == 0.0:
        return torch.ones_like(lengths, dtype=torch.float32)
    return ((5.0 + lengths.float()) / 6.0) ** alpha


def decode_limit(src_lengths: torch.Tensor, max_decode_len: int) -> int:
    """Decoding steps of a batch: at most ``max_decode_len`` and twice the longest source + 10."""
    return int(min(max_decode_len, 2 * int(src_lengths.max()) + 10))


def _strip(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


@torch.no_grad()
def greedy_decode(model, src, src_lengths, bos: int, eos: int, max_decode_len: int = 100) -> list[list[int]]:
    """Token ids (without EOS) of the argmax translation of each source sentence."""
    enc = model.encode(src, src_lengths)
    dec = model.decoder
    batch = src.shape[0]
    state, attention = model.start(enc)
    token = torch.full((batch,), bos, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    out = []
    for _ in range(decode_limit(src_lengths, max_decode_len)):
        h, state, attention = dec.step(dec.embedding(token), state, attention, enc.keys, enc.memory,
                                       enc.mask)
        token = dec.projection(h).argmax(dim=-1)
        token = token.masked_fill(finished, eos)
        out.append(token)
        finished |= token == eos
        if bool(finished.all()):
            break
    tokens = torch.stack(out, dim=1).tolist()
    return [_strip(t, eos) for t in tokens]



@torch.no_grad()
def beam_search(model, src, src_lengths, bos: int, eos: int, beam_size: int = 10,
                alpha: float = 1.0, max_decode_len: int = 100) -> list[list[int]]:
    """Token ids (without EOS) of the best hypothesis per source sentence."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    dec = model.decoder
    batch, k, device = src.shape[0], beam_size, src.device
    enc = model.encode(src, src_lengths).repeat(k)
    state, attention = model.start(enc)
    token = torch.full((batch * k,), bos, dtype=torch.long, device=device)
    # Cumulative log-probabilities; only beam 0 is live at the start (the others are copies).
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    lengths = torch.zeros(batch, k, dtype=torch.long, device=device)
    finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    history: list[torch.Tensor] = []  # tokens (B, K) per step
    parents: list[torch.Tensor] = []  # beam index (B, K) each token extends
    offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)
    for _ in range(decode_limit(src_lengths, max_decode_len)):
        h, state, attention = dec.step(dec.embedding(token), state, attention, enc.keys, enc.memory,
                                       enc.mask)
        logp = torch.log_softmax(dec.projection(h).float(), dim=-1).view(batch, k, -1)
        vocab = logp.shape[-1]
        # Finished hypotheses: EOS at no cost, nothing else.
        done = finished.unsqueeze(-1)
        logp = torch.where(done, torch.full_like(logp, float("-inf")), logp)
        logp[..., eos] = torch.where(finished, torch.zeros_like(logp[..., eos]), logp[..., eos])
        cand = scores.unsqueeze(-1) + logp  # (B, K, V)
        new_len = (lengths + (~finished).long()).unsqueeze(-1).expand(-1, -1, vocab)
        norm = cand / length_penalty(new_len, alpha)
        top = norm.view(batch, -1).topk(k, dim=1).indices  # (B, K), ties -> lower index
        beam_idx, tok = top // vocab, top % vocab
        scores = cand.view(batch, -1).gather(1, top)
        lengths = new_len.reshape(batch, -1).gather(1, top)
        finished = finished.gather(1, beam_idx) | (tok == eos)
        history.append(tok)
        parents.append(beam_idx)
        flat = (beam_idx + offsets).view(-1)
        state = [(hh.index_select(0, flat), cc.index_select(0, flat)) for hh, cc in state]
        attention = attention.index_select(0, flat)
        token = tok.view(-1)
        if bool(finished.all()):
            break
    final = scores / length_penalty(lengths, alpha)
    best = final.argmax(dim=1)  # the beam of the best normalized hypothesis per sentence
    # Backtrack.
    steps = len(history)
    out = torch.empty(batch, steps, dtype=torch.long, device=device)
    beam = best
    rows = torch.arange(batch, device=device)
    for t in range(steps - 1, -1, -1):
        out[:, t] = history[t][rows, beam]
        beam = parents[t][rows, beam]
    return [_strip(t, eos) for t in out.tolist()]
