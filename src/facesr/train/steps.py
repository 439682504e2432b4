"""The losses of one training iteration, and the small pure helpers of the loop.

Under DDP each process holds a share of the global batch. L1 and LPIPS are means over images,
so DDP's gradient averaging gives the single-process gradient of the whole batch. The
relativistic average GAN terms are not: ``E[C(x)]`` is a mean over the whole batch. So the
logits of every process are gathered (rank order = batch order, see ``data.py``) and every
process computes the loss of the whole batch; gradient flows only into this process's share,
so the backward loss is scaled by the number of processes to undo DDP's averaging. The
gradients then equal one process's on the whole batch (tests/train/test_ddp.py).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from facesr.losses import l1, ragan_d_loss, ragan_g_loss


def lr_at(iteration: int, base: float, milestones: tuple[int, ...], gamma: float) -> float:
    """Multi-step schedule: ``base * gamma**k`` after k milestones were reached.

    Example:
        >>> lr_at(10_000, 1e-4, (5_000, 10_000), 0.5)
        2.5e-05
    """
    return base * gamma ** sum(iteration >= m for m in milestones)


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA decay used after optimiser step ``step`` (0-based): ``decay``, warmed up.

    ``min(decay, (1 + step) / (10 + step))``: early averages forget the random
    initialisation (with a fixed 0.999 the EMA still holds 37% of it after 1000 steps).
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model (parameters); buffers copied."""
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(b)


def gather_batch(x: Tensor, world_size: int) -> Tensor:
    """The tensor of the whole global batch, shares concatenated in rank order; gradient flows
    only into this process's share. Identity for one process.

    Shape: (n, ...) on each of ``world_size`` processes -> (world_size * n, ...).
    """
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def generator_loss(sr: Tensor, hr: Tensor, *, d: nn.Module | None, lpips: nn.Module | None,
                   l_pix: float, l_adv: float, l_lpips: float, world_size: int = 1,
                   teacher_sr: Tensor | None = None, l_teacher: float = 0.0,
                   l_color: float = 0.0, color_pool: int = 8
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """PSNR stage (``d`` None): plain L1. GAN stage: ``l_pix*L1 + l_adv*RaGAN + l_lpips*LPIPS``.
    With ``teacher_sr`` (a teacher's output on the same input) both add
    ``l_teacher * L1(sr, teacher_sr)`` (distillation; logged as ``train/l_teacher``).
    With ``l_color`` > 0 both add ``l_color * L1(pool(sr), pool(hr))``, ``pool`` the means of
    ``color_pool`` x ``color_pool`` blocks (:func:`color_loss`; logged as ``train/l_color``).

    ``d`` is called directly (not through DDP; its parameters should not require grad), once
    on ``hr`` without gradient and once on ``sr``.

    Returns:
        (the loss to call ``backward`` on, scaled for DDP as the module docs say; scalars to
        log: ``train/l_pix``, ``train/l_g`` and in the GAN stage ``train/l_adv``,
        ``train/l_lpips``, all of the whole batch except L1 and LPIPS, which are this
        process's).

    Shape: sr, hr (n, 3, H, W) -> scalars.
    """
    pix = l1(sr.float(), hr.float())
    stats = {"train/l_pix": pix}
    local = pix if d is None else l_pix * pix
    if teacher_sr is not None:
        stats["train/l_teacher"] = kd = l1(sr.float(), teacher_sr.float())
        local = local + l_teacher * kd
    if l_color > 0:
        stats["train/l_color"] = lc = color_loss(sr, hr, color_pool)
        local = local + l_color * lc
    if d is None:
        stats["train/l_g"] = local
        return local, {k: v.detach() for k, v in stats.items()}
    with torch.no_grad():
        real = gather_batch(d(hr).float(), world_size)
    stats["train/l_adv"] = adv = ragan_g_loss(real, gather_batch(d(sr).float(), world_size))
    perc = lpips(sr.float(), hr.float()).mean() if lpips is not None else pix.new_zeros(())
    stats["train/l_lpips"] = perc
    local = local + l_lpips * perc
    stats["train/l_g"] = local + l_adv * adv
    return local + (l_adv * world_size) * adv, {k: v.detach() for k, v in stats.items()}


def color_loss(sr: Tensor, hr: Tensor, pool: int = 8) -> Tensor:
    """L1 between the ``pool`` x ``pool`` block means of ``sr`` and ``hr``: the low-frequency
    colour and brightness, blind to texture. It stops a constant colour offset, which plain
    L1 tolerates where fine dark details the LR cannot resolve (hair, lashes, pores) skew the
    targets (L1's optimum is the conditional median, not the mean).

    Shape: (n, 3, H, W) twice -> scalar.
    """
    return l1(F.avg_pool2d(sr.float(), pool, ceil_mode=True),
              F.avg_pool2d(hr.float(), pool, ceil_mode=True))


def discriminator_loss(d: nn.Module, sr: Tensor, hr: Tensor, *, world_size: int = 1
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """Relativistic average discriminator loss over the whole batch (``sr`` is detached here).

    Returns:
        (the loss to call ``backward`` on, scaled for DDP; scalars ``train/l_d``,
        ``train/d_real``, ``train/d_fake``: the whole batch's loss and mean logits).
    """
    real = gather_batch(d(hr).float(), world_size)
    fake = gather_batch(d(sr.detach()).float(), world_size)
    loss = ragan_d_loss(real, fake)
    stats = {"train/l_d": loss.detach(), "train/d_real": real.detach().mean(),
             "train/d_fake": fake.detach().mean()}
    return loss * world_size, stats
