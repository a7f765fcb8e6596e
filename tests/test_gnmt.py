"""GNMT (gnmt_v2): shapes, structure, parameter/NNZ counts of Table 4, pruning groups."""

import pytest
import torch

from gradprune.models import build_model, prune_include
from gradprune.models.gnmt import PRUNE_INCLUDE, gnmt
from gradprune.pruning import GradualPruner, n_to_prune, select_prune_groups
from gradprune.schedule import CubicSchedule

torch.set_num_threads(1)


def _nnz_at(model, sparsity):
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    groups = select_prune_groups(model, PRUNE_INCLUDE)
    sizes = [sum(params[t].numel() for t in g.tensors) for g in groups]
    return total, total - sum(n_to_prune(sparsity, n) for n in sizes)


def test_table4_counts_with_a_36548_piece_vocabulary():
    with torch.device("meta"):
        large = gnmt(1024, vocab_size=36548)
        small = gnmt(512, vocab_size=36548)
    total, _ = _nnz_at(large, 0.8)
    assert total == 210_917_377  # paper / reference: 211M
    assert [round(_nnz_at(large, s)[1] / 1e6) for s in (0.8, 0.85, 0.9)] == [44, 33, 23]
    assert round(sum(p.numel() for p in small.parameters()) / 1e6) == 81


def test_structure_bidirectional_first_layer_attention_in_every_decoder_layer():
    m = gnmt(16, vocab_size=50, num_layers=4)
    enc, dec = m.encoder.layers, m.decoder.cells
    assert enc[0].bidirectional and not any(layer.bidirectional for layer in enc[1:])
    assert enc[1].input_size == 32 and all(layer.input_size == 16 for layer in enc[2:])
    assert all(c.input_size == 32 for c in dec)  # [input; attention] for every decoder layer
    assert m.decoder.projection.bias is None
    groups = [g.name for g in select_prune_groups(m, prune_include("gnmt"))]
    assert "encoder.layers.0.l0_reverse" in groups and "decoder.cells.3.cell" in groups
    assert not any("attention" in g for g in groups)


def test_forward_loss_and_padding_invariance():
    torch.manual_seed(0)
    m = build_model("gnmt", size=16, vocab_size=40, num_layers=3, dropout=0.0).eval()
    src = torch.randint(4, 40, (3, 7))
    lengths = torch.tensor([7, 5, 2])
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    tgt = torch.randint(4, 40, (3, 6))
    logits = m(src, lengths, tgt)
    assert logits.shape == (3, 6, 40)
    # Extra padding on the source changes nothing (packed encoder, masked attention).
    padded = torch.cat([src, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(m(padded, lengths, tgt), logits)
    loss = m.loss(src, lengths, tgt, tgt)
    loss.backward()
    assert torch.isfinite(loss)


def test_pruner_masks_gnmt_weights():
    torch.manual_seed(0)
    m = gnmt(16, vocab_size=40, num_layers=2)
    pruner = GradualPruner(m, CubicSchedule(0.0, 0.8, 0, 1, 1), include=prune_include("gnmt"))
    pruner.prune_to(0.8)
    masks = pruner.masks()
    assert "decoder.cells.0.weight_ih" in masks and "encoder.embedding.weight" in masks
    kept = sum(int(v.sum()) for v in masks.values())
    numel = sum(v.numel() for v in masks.values())
    assert kept / numel == pytest.approx(0.2, abs=0.01)


def test_decoder_starts_from_the_encoder_final_states_as_gnmt_v2():
    """TF NMT's gnmt_v2 passes the encoder's final states to the decoder (pass_hidden_state): the
    backward direction of the bidirectional layer, then each unidirectional layer's, taken at
    each sentence's own last token. Without it a small model learned a target-side LM only."""
    torch.manual_seed(0)
    m = gnmt(8, vocab_size=30, num_layers=3, dropout=0.0).eval()
    src = torch.randint(4, 30, (2, 6))
    lengths = torch.tensor([6, 3])
    src[1, 3:] = 0
    enc = m.encode(src, lengths)
    state, attention = m.start(enc)
    assert torch.equal(attention, torch.zeros(2, 8))
    # Sentence 1 alone, unpadded: its states are the same (packed, so padding is never read).
    alone = m.encode(src[1:, :3], lengths[1:])
    for (h, c), (h1, c1) in zip(state, alone.state):
        torch.testing.assert_close(h[1:], h1)
        torch.testing.assert_close(c[1:], c1)
    # Layer 0's state is the backward direction's: it has read the sentence down to its first token.
    _, (h_n, _) = m.encoder.layers[0](m.encoder.embedding(src[1:, :3]))
    torch.testing.assert_close(state[0][0][1:], h_n[1])
    # So the first decoder output already depends on the source; with zeros it would not.
    tgt = torch.full((2, 1), 2)
    other = torch.randint(4, 30, (2, 6))
    assert not torch.allclose(m(src, lengths, tgt), m(other, lengths, tgt))
    m.pass_hidden_state = False
    zero_state, _ = m.start(enc)
    assert all(torch.equal(h, torch.zeros(2, 8)) for h, _ in zero_state)


def test_forget_gate_bias_starts_at_one_as_tf_basic_lstm_cell():
    torch.manual_seed(0)
    m = gnmt(8, vocab_size=30, num_layers=2, forget_bias=1.0)
    biases = {n: p for n, p in m.named_parameters() if "bias_ih" in n}
    assert set(biases) == {"encoder.layers.0.bias_ih_l0", "encoder.layers.0.bias_ih_l0_reverse",
                           "encoder.layers.1.bias_ih_l0", "decoder.cells.0.bias_ih",
                           "decoder.cells.1.bias_ih"}
    for name, b in biases.items():
        forget, others = b[8:16], torch.cat([b[:8], b[16:]])
        assert forget.min() >= 0.9 and forget.max() <= 1.1, name
        assert others.abs().max() <= 0.1, name
    assert torch.equal(m.decoder.attention.b, torch.zeros(8))


def _batch_with_padding(vocab=30, pad=0):
    """Source/target batch of 3 sentences whose targets have 6, 3 and 1 tokens (+ EOS)."""
    torch.manual_seed(1)
    src = torch.randint(4, vocab, (3, 5))
    src_len = torch.tensor([5, 4, 2])
    tgt_len = torch.tensor([7, 4, 2])  # decoder steps: BOS + tokens in, tokens + EOS out
    tgt_in = torch.randint(4, vocab, (3, 7))
    tgt_out = torch.randint(4, vocab, (3, 7))
    for i in range(3):
        src[i, src_len[i]:] = pad
        tgt_in[i, tgt_len[i]:] = pad
        tgt_out[i, tgt_len[i]:] = pad
    return src, src_len, tgt_in, tgt_out


def _token_losses(model, batch, label_smoothing):
    """Per-token cross entropy (B, T) written out: (1 - e) * NLL + e * mean over the vocabulary
    of -log p (PyTorch's and TF's label smoothing), zero on padding."""
    src, src_len, tgt_in, tgt_out = batch
    logp = torch.log_softmax(model(src, src_len, tgt_in), dim=-1)
    nll = -logp.gather(2, tgt_out.unsqueeze(-1)).squeeze(-1)
    smooth = -logp.mean(dim=-1)
    per_token = (1 - label_smoothing) * nll + label_smoothing * smooth
    return per_token * (tgt_out != model.pad_id)


def _sgd_step(model, loss_fn, lr=1.0):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss_fn(model).backward()
    opt.step()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_one_sgd_step_under_the_paper_loss_is_tf_nmts_summed_per_sentence_step(label_smoothing):
    """TF NMT (nmt/model.py _compute_loss): reduce_sum(crossent * target_weights) / batch_size.
    With the paper's SGD lr 1.0 a per-token mean would step about (mean target length) times
    shorter; here targets of 7, 4 and 2 tokens make the two steps differ by 13 / 3."""
    import copy

    from tests.workflow_helpers import load_preset

    from gradprune.config import validate_config
    from gradprune.data.translation import settings

    paper = validate_config(load_preset("paper"))["experiments"]
    forms = {settings(paper[name])["loss"] for name in ("gnmt-wmt16-ende", "gnmt-wmt16-deen")}
    assert forms == {"sum_per_sentence"}
    (form,) = forms
    batch = _batch_with_padding()
    base = gnmt(8, vocab_size=30, num_layers=3, dropout=0.0)
    by_model = _sgd_step(copy.deepcopy(base), lambda m: m.loss(*batch, label_smoothing, form=form))
    by_hand = _sgd_step(copy.deepcopy(base),
                        lambda m: _token_losses(m, batch, label_smoothing).sum(dim=1).mean())
    for name, p in by_hand.items():
        torch.testing.assert_close(by_model[name], p, rtol=1e-5, atol=1e-6, msg=name)
    # The per-token mean steps 13 / 3 times shorter: what the preset trained before.
    per_token = _sgd_step(copy.deepcopy(base), lambda m: m.loss(*batch, label_smoothing,
                                                                form="mean_per_token"))
    start = {n: p.detach() for n, p in base.named_parameters()}
    name = "decoder.projection.weight"
    ratio = (by_hand[name] - start[name]).norm() / (per_token[name] - start[name]).norm()
    assert float(ratio) == pytest.approx(13 / 3, rel=1e-4)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_the_mini_preset_keeps_the_per_token_mean_loss(label_smoothing):
    import torch.nn.functional as F
    from tests.workflow_helpers import load_preset

    from gradprune.config import validate_config
    from gradprune.data.translation import settings

    form = settings(validate_config(load_preset("mini"))["experiments"]["gnmt-multi30k"])["loss"]
    assert form == "mean_per_token"
    batch = _batch_with_padding()
    m = gnmt(8, vocab_size=30, num_layers=2, dropout=0.0)
    loss = m.loss(*batch, label_smoothing, form=form)
    # bitwise the formula the mini trained with so far
    src, src_len, tgt_in, tgt_out = batch
    logits = m(src, src_len, tgt_in)
    old = F.cross_entropy(logits.reshape(-1, 30), tgt_out.reshape(-1), ignore_index=0,
                          label_smoothing=label_smoothing)
    assert torch.equal(loss, old)
    per_token = _token_losses(m, batch, label_smoothing)
    torch.testing.assert_close(loss, per_token.sum() / 13)
    with pytest.raises(ValueError, match="unknown GNMT loss 'mean'"):
        m.loss(*batch, form="mean")
