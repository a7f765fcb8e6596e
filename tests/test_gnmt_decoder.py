"""GNMT teacher forcing steps only the bottom decoder cell (issue 22, item 4): the loss and every
gradient equal those of the step loop it replaced, to float rounding, and decoding (which steps
every cell) agrees with teacher forcing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradprune.models.gnmt import gnmt
from gradprune.translation.decode import beam_search, greedy_decode

torch.set_num_threads(1)


def step_loop_forward(model, src, src_lengths, tgt_in):
    """The oracle: GNMT.forward as it was before the upper cells ran over the whole sequence
    (every cell stepped at every t), written out here from the model's modules."""
    enc = model.encode(src, src_lengths)
    dec = model.decoder
    state, attention = model.start(enc)
    emb = dec.embedding(tgt_in)
    outputs = []
    for t in range(tgt_in.shape[1]):
        h, c = dec.cells[0](dec.drop(torch.cat([emb[:, t], attention], dim=1)), state[0])
        new_state = [(h, c)]
        attention, _ = dec.attention(h, enc.keys, enc.memory, enc.mask)
        x = h
        for i in range(1, len(dec.cells)):
            h, c = dec.cells[i](dec.drop(torch.cat([x, attention], dim=1)), state[i])
            new_state.append((h, c))
            x = h + x if i >= dec.residual_from else h
        state = new_state
        outputs.append(x)
    return dec.projection(torch.stack(outputs, dim=1))


class ValueDropout(nn.Module):
    """A stand-in for dropout that zeroes entries by their value (and scales the rest): the same
    entries whether applied step by step or to a whole sequence, so both forwards must apply it
    to the same inputs to agree."""

    def forward(self, x):
        keep = torch.frac(x.detach() * 997).abs() > 0.3
        return x * keep / 0.7


def _batch(vocab=40, batch=4, src_len=7, tgt_len=9):
    gen = torch.Generator().manual_seed(3)
    src = torch.randint(4, vocab, (batch, src_len), generator=gen)
    lengths = torch.tensor([7, 5, 3, 6])[:batch]
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    tgt_in = torch.randint(4, vocab, (batch, tgt_len), generator=gen)
    tgt_out = torch.randint(4, vocab, (batch, tgt_len), generator=gen)
    tgt_out[1, 6:] = 0  # padding in the target
    return src, lengths, tgt_in, tgt_out


def _loss_and_grads(model, forward, batch):
    src, lengths, tgt_in, tgt_out = batch
    model.zero_grad(set_to_none=True)
    logits = forward(src, lengths, tgt_in)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                       ignore_index=0, reduction="sum") / tgt_out.shape[0]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("num_layers", [2, 3, 4])
@pytest.mark.parametrize("dropout", ["none", "by-value"])
def test_loss_and_gradients_equal_the_step_loop(num_layers, dropout):
    torch.manual_seed(0)
    model = gnmt(12, vocab_size=40, num_layers=num_layers, dropout=0.0).train()
    if dropout == "by-value":
        model.encoder.drop = model.decoder.drop = ValueDropout()
    batch = _batch()
    loss, grads = _loss_and_grads(model, model, batch)
    want_loss, want = _loss_and_grads(model, lambda *a: step_loop_forward(model, *a), batch)
    torch.testing.assert_close(loss, want_loss, rtol=1e-6, atol=1e-6)
    assert grads.keys() == want.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, want[name], rtol=1e-5, atol=1e-6, msg=name)
    # the upper cells' gradients are not zero: they are in the computation
    assert all(bool(grads[f"decoder.cells.{i}.weight_ih"].abs().sum() > 0) for i in range(num_layers))


def test_dropout_masks_of_the_sequence_forward_have_the_rate_asked():
    """With real dropout the masks are drawn per layer instead of per step (another draw of the
    same dropout): each upper cell's whole-sequence input drops its share of entries."""
    torch.manual_seed(0)
    model = gnmt(64, vocab_size=40, num_layers=4, dropout=0.25).train()
    seen = []
    model.decoder.drop.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    src, lengths, tgt_in, _ = _batch(batch=4, tgt_len=30)
    model(src, lengths, tgt_in)
    upper = [(i, o) for i, o in seen if i.dim() == 3]
    assert len(upper) == 3  # one whole-sequence input per upper cell
    for i, o in upper:
        dropped = ((o == 0) & (i != 0)).float().mean().item()
        assert dropped == pytest.approx(0.25, abs=0.02)


def test_greedy_and_beam_decoding_agree_with_teacher_forcing():
    """Decoding steps every cell; feeding its own output back as the target prefix, teacher
    forcing (upper cells over the sequence) must pick the same tokens."""
    torch.manual_seed(1)
    model = gnmt(16, vocab_size=30, num_layers=4, dropout=0.0).eval()
    src, lengths, _, _ = _batch(vocab=30)
    bos, eos = 1, 2
    with torch.no_grad():
        hyps = greedy_decode(model, src, lengths, bos, eos, max_decode_len=8)
        for i, hyp in enumerate(hyps):
            tokens = hyp[:8]
            if not tokens:
                continue
            tgt_in = torch.tensor([[bos] + tokens[:-1]])
            logits = model(src[i : i + 1, : lengths[i]], lengths[i : i + 1], tgt_in)
            assert logits.argmax(-1)[0].tolist() == tokens
        beams = beam_search(model, src, lengths, bos, eos, beam_size=3, alpha=1.0, max_decode_len=8)
    assert len(beams) == src.shape[0] and all(isinstance(b, list) for b in beams)
    # beam 1 is greedy search
    with torch.no_grad():
        assert beam_search(model, src, lengths, bos, eos, beam_size=1, alpha=0.0,
                           max_decode_len=8) == hyps
