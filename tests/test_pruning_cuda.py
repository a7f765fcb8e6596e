"""The cuDNN path: in-place masks keep an nn.LSTM's flattened weights valid (needs a GPU)."""

import warnings

import pytest
import torch
from torch import nn

from gradprune.pruning import GradualPruner, n_to_prune
from gradprune.schedule import CubicSchedule

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA device (torch.cuda.is_available() is False)",
    ),
]


def test_cudnn_lstm_stays_flat_and_pruned():
    torch.manual_seed(0)
    device = torch.device("cuda")
    lstm = nn.LSTM(32, 64, num_layers=2).to(device)
    head = nn.Linear(64, 10).to(device)
    model = nn.ModuleDict({"lstm": lstm, "head": head})
    pointers = [w.data_ptr() for w in lstm._flat_weights]
    pruner = GradualPruner(model, CubicSchedule(0.0, 0.8, begin_step=0, frequency=5, n_updates=4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = dict(model.named_parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "not part of single contiguous chunk" would fail here
        for step in range(30):
            x = torch.randn(12, 8, 32, device=device)
            opt.zero_grad()
            out, _ = lstm(x)
            head(out).pow(2).mean().backward()
            for name, mask in pruner.masks().items():
                assert torch.all(params[name].grad[~mask] == 0), name
            opt.step()
            pruner.step(step)
            for name, mask in pruner.masks().items():
                assert torch.all(params[name][~mask] == 0), name
    assert [w.data_ptr() for w in lstm._flat_weights] == pointers
    assert all(type(p) is nn.Parameter for p in lstm.parameters())
    masks = pruner.masks()
    numel = masks["lstm.weight_ih_l1"].numel() + masks["lstm.weight_hh_l1"].numel()
    zeros = int((~masks["lstm.weight_ih_l1"]).sum() + (~masks["lstm.weight_hh_l1"]).sum())
    assert zeros == n_to_prune(0.8, numel)
    assert masks["lstm.weight_ih_l0"].device.type == "cuda"


def test_a_2_4_mask_runs_as_torch_semi_structured_sparsity_with_the_same_output():
    """The N:M rule's 2:4 masks are what ``to_sparse_semi_structured`` accepts: the compressed
    layer computes the masked dense layer's output (fp16, the kernels' dtype)."""
    from torch.sparse import to_sparse_semi_structured

    torch.manual_seed(0)
    device = torch.device("cuda")
    layer = nn.Linear(128, 128, bias=False).half().to(device)
    pruner = GradualPruner(layer, CubicSchedule(0.0, 0.5, begin_step=0, frequency=1, n_updates=0),
                           n_m=(2, 4))
    pruner.prune_to(0.5)
    x = torch.randn(64, 128, dtype=torch.float16, device=device)
    dense = layer(x)
    layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()))
    assert torch.allclose(layer(x), dense, rtol=1e-2, atol=1e-2)
