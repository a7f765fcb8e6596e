"""GradualPruner under DistributedDataParallel: 2 CPU processes, gloo, different data per rank."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gradprune.pruning import GradualPruner, n_to_prune
from gradprune.schedule import CubicSchedule

WORLD = 2
STEPS = 30


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(40, 12)
        self.lstm = nn.LSTM(12, 12, 2)
        self.out = nn.Linear(12, 40)

    def forward(self, x):
        return self.out(self.lstm(self.emb(x))[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        model = nn.parallel.DistributedDataParallel(LM())
        pruner = GradualPruner(
            model, CubicSchedule(0.0, 0.75, begin_step=3, frequency=4, n_updates=5)
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
        for step in range(STEPS):
            data = torch.randint(
                40, (9, 3), generator=torch.Generator().manual_seed(rank * 1000 + step)
            )
            opt.zero_grad()
            logits = model(data[:-1])
            nn.functional.cross_entropy(logits.reshape(-1, 40), data[1:].reshape(-1)).backward()
            opt.step()
            pruner.step(step)
        torch.save(
            {
                "masks": pruner.masks(),
                "weights": unwrap_state(model),
                "report": pruner.sparsity_report(),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def unwrap_state(model):
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def test_ddp_ranks_agree_on_masks_and_weights(tmp_path):
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))
    assert set(r0["masks"]) == set(r1["masks"]) and len(r0["masks"]) == 6
    for name in r0["masks"]:
        assert torch.equal(r0["masks"][name], r1["masks"][name]), name
    for name in r0["weights"]:
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name
    for name, mask in r0["masks"].items():
        assert torch.all(r0["weights"][name][~mask] == 0), name
    # the schedule was completed: each group holds exactly its final number of zeros
    lstm_l1 = torch.cat(
        [~r0["masks"]["lstm.weight_ih_l1"].flatten(), ~r0["masks"]["lstm.weight_hh_l1"].flatten()]
    )
    assert int(lstm_l1.sum()) == n_to_prune(0.75, lstm_l1.numel())
    assert int((~r0["masks"]["out.weight"]).sum()) == n_to_prune(0.75, 480)
