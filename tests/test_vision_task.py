"""Top-1/top-5 accuracy, the one evaluation every image dataset (small ones and ImageNet) uses."""

from __future__ import annotations

import torch
from torch import nn

from gradprune.tasks.vision import top1_top5


def test_top1_top5_counts_hits_among_the_five_largest_logits():
    # Logits rank the classes 0 > 1 > ... > 6 for every example.
    model = nn.Linear(1, 7, bias=True)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.arange(7, 0, -1, dtype=torch.float32))
    model.train()
    x = torch.zeros(6, 1)
    labels = torch.tensor([0, 1, 4, 5, 6, 0])  # top-1: 2 of 6; top-5 (classes 0-4): 4 of 6
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]
    assert top1_top5(model, batches, "cpu") == {"top1": 100.0 * 2 / 6, "top5": 100.0 * 4 / 6}
    assert model.training  # the model's mode is given back


def test_fewer_than_five_classes_count_every_class_in_top5():
    model = nn.Linear(1, 3)
    assert top1_top5(model, [(torch.zeros(4, 1), torch.tensor([0, 1, 2, 2]))], "cpu")["top5"] == 100.0
