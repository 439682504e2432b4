"""pix2pix / CycleGAN NLayer PatchGAN discriminator (Isola et al. 2017).

Layer layout and parameter names (``model.N``) follow pix2pix's ``NLayerDiscriminator``, so
its checkpoints load for ``norm="batch"``/``"instance"``. Each output logit judges one
overlapping patch (70x70 px receptive field for ``n_layers=3``).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

Norm = Literal["batch", "spectral", "instance", "none"]


def patch_map_size(size: int, n_layers: int = 3) -> int:
    """Side of the logit map for an input side ``size`` (4x4 convs, padding 1)."""
    for _ in range(n_layers):
        size = size // 2  # stride 2: floor((s + 2 - 4) / 2) + 1
    return size - 2  # two stride-1 convs, each -1


class PatchDiscriminator(nn.Module):
    """Fully convolutional discriminator that outputs one logit per image patch.

    Args:
        in_ch: input channels.
        ndf: filters of the first conv (doubled per layer, capped at 8 * ndf).
        n_layers: stride-2 convs (3 in pix2pix: 70x70 patches).
        norm: "batch" (pix2pix default), "instance" (CycleGAN), "spectral" (spectral norm on
            every conv, no normalisation layers) or "none".

    Shape: (N, in_ch, H, W) -> (N, 1, h, w) with h = ``patch_map_size(H, n_layers)``
    (H // 8 - 2 for 3 layers); raw logits.

    Example:
        >>> import torch
        >>> PatchDiscriminator(ndf=8)(torch.rand(2, 3, 128, 96)).shape
        torch.Size([2, 1, 14, 10])
    """

    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: Norm = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "spectral", "instance", "none"):
            raise ValueError(f"norm must be batch, spectral, instance or none, got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        use_bias = norm != "batch"  # batch norm has its own shift

        def conv(cin: int, cout: int, stride: int, bias: bool = True) -> nn.Module:
            c = nn.Conv2d(cin, cout, kernel_size=4, stride=stride, padding=1, bias=bias)
            nn.init.normal_(c.weight, 0.0, 0.02)  # pix2pix init_weights("normal", 0.02)
            if c.bias is not None:
                nn.init.zeros_(c.bias)
            return spectral_norm(c) if norm == "spectral" else c

        def norm_layer(ch: int) -> list[nn.Module]:
            if norm == "batch":
                bn = nn.BatchNorm2d(ch)
                nn.init.normal_(bn.weight, 1.0, 0.02)
                nn.init.zeros_(bn.bias)
                return [bn]
            if norm == "instance":
                return [nn.InstanceNorm2d(ch)]
            return []

        layers: list[nn.Module] = [conv(in_ch, ndf, 2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [conv(ndf * prev, ndf * mult, stride, use_bias), *norm_layer(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(conv(ndf * mult, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if min(patch_map_size(h, self.n_layers), patch_map_size(w, self.n_layers)) < 1:
            raise ValueError(f"input {h}x{w} is too small for a {self.n_layers}-layer "
                             f"PatchGAN (needs at least {3 * 2**self.n_layers} px per side)")
        return self.model(x)
