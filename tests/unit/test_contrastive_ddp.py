"""Under DDP the contrastive losses see the global batch: two gloo processes against one process."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmrun.tasks.contrastive import InfoNCELoss, SigLIPLoss

WORLD = 2
NAMES = ("infonce", "siglip")


def inputs():
    g = torch.Generator().manual_seed(3)
    q = torch.nn.functional.normalize(torch.randn(8, 5, generator=g), dim=1)
    t = torch.nn.functional.normalize(torch.randn(8, 5, generator=g), dim=1)
    groups = torch.tensor([0, 1, 2, 2, 3, 4, 4, 5])  # positives across the two ranks' halves too
    return q, t, groups, torch.ones(8, dtype=torch.bool)


def make(name: str):
    return InfoNCELoss(temperature=0.5) if name == "infonce" else SigLIPLoss(temperature=3.0, bias=-2.0)


def worker(rank: int, out: str) -> None:
    # A file store: no port to pick and race for.
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=WORLD)
    q, t, groups, valid = inputs()
    half = slice(rank * 4, rank * 4 + 4)
    for name in NAMES:
        q_local, t_local = q[half].clone().requires_grad_(), t[half].clone().requires_grad_()
        loss = make(name)(q_local, t_local, groups[half], valid[half])
        loss.backward()
        torch.save({"loss": loss.detach(), "q": q_local.grad, "t": t_local.grad}, f"{out}/{name}-{rank}.pt")
    dist.barrier()  # neither rank tears gloo down while the other is still inside a collective
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Each rank's loss and gradients for both losses, from one two-process gloo group."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(str(out),), nprocs=WORLD, join=True)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_gathered_loss_and_gradients_match_one_process_on_the_whole_batch(name, ranks):
    parts = [torch.load(ranks / f"{name}-{r}.pt") for r in range(WORLD)]
    q, t, groups, valid = inputs()
    q.requires_grad_(), t.requires_grad_()
    whole = make(name)(q, t, groups, valid)
    whole.backward()
    # DDP averages the ranks' gradients: the mean of the local losses is the whole-batch loss
    assert torch.stack([p["loss"] for p in parts]).mean().item() == pytest.approx(whole.item(), abs=1e-5)
    gathered_q = torch.cat([p["q"] for p in parts]) / WORLD
    gathered_t = torch.cat([p["t"] for p in parts]) / WORLD
    assert torch.allclose(gathered_q, q.grad, atol=1e-5) and torch.allclose(gathered_t, t.grad, atol=1e-5)
