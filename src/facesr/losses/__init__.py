"""Training losses: pixel L1, relativistic average GAN, and LPIPS (also a metric)."""

from __future__ import annotations

from torch import Tensor

from facesr.losses.gan import ragan_d_loss, ragan_g_loss
from facesr.losses.lpips import LPIPS, load_lpips


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error.

    Args:
        pred: any shape, e.g. (N, 3, H, W).
        target: same shape as ``pred``.

    Returns:
        Scalar loss.
    """
    if pred.shape != target.shape:
        raise ValueError(f"L1 needs equal shapes, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return (pred - target).abs().mean()


__all__ = ["LPIPS", "l1", "load_lpips", "ragan_d_loss", "ragan_g_loss"]
