"""DDP with two CPU processes (gloo) computes what one process computes on the whole batch."""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel as DDP

from facesr.losses import load_lpips
from facesr.models import PatchDiscriminator, RRDBNet
from facesr.train.config import TrainConfig, config_to_yaml, load_config
from facesr.train.loop import train
from facesr.train.steps import discriminator_loss, generator_loss

Tiny = Callable[..., TrainConfig]
WORLD = 2


def _batch() -> tuple[Tensor, Tensor]:
    """LR and HR of a global batch of 8; the first process's share is darker than the other's."""
    g = torch.Generator().manual_seed(1)
    x, hr = torch.rand(8, 3, 8, 8, generator=g), torch.rand(8, 3, 32, 32, generator=g)
    return x, hr * torch.tensor([0.3] * 4 + [1.0] * 4).view(8, 1, 1, 1)


def _gradients(rank: int, world_size: int, *, gather: bool = True) -> dict[str, Tensor]:
    """G and D gradients of one iteration on this process's share of ``_batch()``.

    ``gather=False`` computes the RaGAN terms on the share alone (what a naive DDP port does).
    """
    torch.manual_seed(0)
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    d = PatchDiscriminator(ndf=8, n_layers=2, norm="none")
    with torch.no_grad():  # a D with opinions: logits that differ between images
        for p in d.parameters():
            p.mul_(3.0)
    g_train, d_train = (DDP(g), DDP(d)) if world_size > 1 else (g, d)
    x, hr = _batch()
    n = len(x) // world_size
    x, hr = x[rank * n:(rank + 1) * n], hr[rank * n:(rank + 1) * n]
    ws = world_size if gather else 1
    d.requires_grad_(False)
    sr = g_train(x)
    loss, _ = generator_loss(sr, hr, d=d, lpips=load_lpips(), l_pix=1.0, l_adv=1.0,
                             l_lpips=1.0, world_size=ws)
    loss.backward()
    d.requires_grad_(True)
    loss_d, _ = discriminator_loss(d_train, sr, hr, world_size=ws)
    loss_d.backward()
    return ({f"G.{k}": p.grad for k, p in g.named_parameters()}
            | {f"D.{k}": p.grad for k, p in d.named_parameters()})


def _worker(rank: int, ports: tuple[int, int], config: Path, out: Path) -> None:
    """One of the two processes: gradients, then ``facesr train`` as torchrun starts it."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[0]}", rank=rank,
                            world_size=WORLD)
    torch.save({"ddp": _gradients(rank, WORLD), "naive": _gradients(rank, WORLD, gather=False)},
               out / f"grads{rank}.pt")
    dist.destroy_process_group()

    from facesr.cli.train import train as cli_train

    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(ports[1])}
    cli_train(config=config, out_dir=out / "ddp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_close(a: dict[str, Tensor], b: dict[str, Tensor], rel: float,
                  skip: tuple[str, ...] = ()) -> None:
    """Every tensor within ``rel`` of its own largest value (gradients span 9 decades)."""
    assert a.keys() == b.keys()
    for k in a.keys() - set(skip):
        err, scale = (a[k] - b[k]).abs().max().item(), b[k].abs().max().item()
        assert err <= rel * scale, f"{k}: differs by {err:.3g}, largest value {scale:.3g}"


def test_two_gloo_processes_match_one_process(tiny: Tiny, pool_files: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    kernels, noise = pool_files
    cfg = tiny("train.stage=gan", "disc.norm=none", "loss.l_adv=0.5",
               "train.iterations=3", "train.val_every=1000",
               f"data.kernels={kernels}", f"data.noise={noise}")
    config = tmp_path / "exp.yaml"
    config.write_text(config_to_yaml(cfg), encoding="utf-8")
    # fork: the processes start with this one's imports (spawned, each spends seconds
    # importing torch and, at its first optimizer, torch._dynamo: import that here first)
    importlib.import_module("torch._dynamo")
    mp.start_processes(_worker, args=((_free_port(), _free_port()), config, tmp_path),
                       nprocs=WORLD, start_method="fork")

    # gradients of one iteration: each process's equal the single process's (whole batch).
    # D's last bias shifts real and fake logits alike, which RaGAN ignores: its gradient is 0
    # up to rounding, so it is compared with the others' scale, not its own.
    one = _gradients(0, 1)
    last_bias = "D.model.6.bias"
    assert one[last_bias].abs().max() < 1e-3 * one["D.model.6.weight"].abs().max()
    ranks = [torch.load(tmp_path / f"grads{r}.pt", weights_only=True) for r in range(WORLD)]
    for r in ranks:
        _assert_close(r["ddp"], one, rel=1e-5, skip=(last_bias,))
        assert (r["ddp"][last_bias] - one[last_bias]).abs().max() < 1e-6
    # ...which needs the gathered RaGAN: a per-process relativistic mean gives other ones
    naive = ranks[0]["naive"]
    with pytest.raises(AssertionError, match="differs by"):
        _assert_close(naive, one, rel=1e-4, skip=(last_bias,))

    # whole iterations through `facesr train` (3 of them, G and D, Adam): the same weights
    # (Adam turns D's rounding-noise last-bias gradient into +-lr steps: not compared)
    train(load_config(config), tmp_path / "one")
    for name in ("G", "G_ema", "D"):
        ddp = load_file(tmp_path / "ddp" / "ckpt" / "000000003" / f"{name}.safetensors")
        single = load_file(tmp_path / "one" / "ckpt" / "000000003" / f"{name}.safetensors")
        _assert_close(ddp, single, rel=1e-5, skip=("model.6.bias",))
