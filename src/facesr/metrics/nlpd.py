"""NLPD: normalised Laplacian pyramid distance (full-reference, pure torch, float64).

Source: Laparra, Ballé, Berardino, Simoncelli, "Perceptual image quality assessment using a
normalized Laplacian pyramid", Electronic Imaging 2016 (HVEI); reference implementation the
authors' ``NLP_dist.m``, followed step by step:

- grey image in [0, 1] (``color="gray"``: MATLAB ``rgb2gray`` of the 8-bit image, / 255; the
  reference values) or another colour of :mod:`facesr.metrics.color` (/ 255); ``crop_border``
  pixels removed from each side first (default 0);
- a 6-level Laplacian pyramid (Burt and Adelson's 5-tap filter [.05 .25 .4 .25 .05] as an
  outer product): low-pass with ``imfilter(.., 'symmetric')`` and keep every second pixel
  from the first; expand by replicate-padding 1 px, zero insertion x4, the same filter with
  zero padding, and cropping; the last level is the low-pass residual;
- divisive normalisation of level k: ``L / (sigma_k + conv2(|L|, F_k, 'same'))`` with the
  paper's McGill-trained 5x5 ``F_k`` and ``sigma_k`` (``DN_filters`` of ``NLP_dist.m``;
  note the 0.0072 tap of F_1, which ports with 3x3 filters drop);
- the distance: the mean over levels of the root mean square difference.

Lower is better; 0 for identical images. For ``color="rgb"`` the root mean square runs over
the three channels too.

Calibration (tests/metrics/test_nlpd.py): the ``nlpd`` reference row (``NLP_dist.m`` on
``rgb2gray`` images, 4 decimals) is matched within 3.5e-5: 0.56161, 0.01953, 0.01592,
0.30280, 0.43260 vs 0.5616, 0.0195, 0.0159, 0.3028, 0.4326. (IQA-PyTorch's port, unrounded
Y and 3x3 filters, gives 0.0139 and 0.0110 on I04 and I06.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from facesr.metrics.color import Color, check_images, crop, to_channels

LEVELS = 6
MIN_SIDE = 32  # each expanded level must stay >= 2 px for the symmetric padding
_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
# Centre 3x3 of each 5x5 DN filter (row-major), and F_1's extra tap at (row 3, column 5).
_DN = (
    (0, 0.1011, 0, 0.1493, 0, 0.1460, 0, 0.1015, 0),
    (0, 0.0757, 0, 0.1986, 0, 0.1846, 0, 0.0837, 0),
    (0, 0.0477, 0, 0.2138, 0, 0.2243, 0, 0.0467, 0),
    (0, 0, 0, 0.2503, 0, 0.2616, 0, 0, 0),
    (0, 0, 0, 0.2598, 0, 0.2552, 0, 0, 0),
    (0, 0, 0, 0.2215, 0, 0.0717, 0, 0, 0),
)


def dn_filters(dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> Tensor:
    """The six 5x5 divisive-normalisation filters of ``NLP_dist.m`` as (6, 5, 5)."""
    f = torch.zeros(LEVELS, 5, 5, dtype=dtype, device=device)
    f[:, 1:4, 1:4] = torch.tensor(_DN, dtype=dtype, device=device).view(LEVELS, 3, 3)
    f[0, 2, 4] = 0.0072
    return f


def _symmetric_pad(x: Tensor, p: int) -> Tensor:
    """MATLAB ``padarray(x, [p p], 'symmetric')`` (the edge pixel repeated), p <= size."""
    x = torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], dim=-2)
    return torch.cat([x[..., :p].flip(-1), x, x[..., -p:].flip(-1)], dim=-1)


def laplacian_pyramid(img: Tensor, levels: int = LEVELS) -> list[Tensor]:
    """``laplacian_pyramid_s`` of ``NLP_dist.m``: band-pass levels, then the low-pass residual.

    Shape: (N, C, H, W) -> ``levels`` tensors (N, C, ceil(H / 2^k), ceil(W / 2^k)).
    """
    taps = torch.tensor(_TAPS, dtype=img.dtype, device=img.device)
    filt = (taps[:, None] * taps[None, :]).expand(img.shape[1], 1, 5, 5)
    ch = img.shape[1]
    pyr, j = [], img
    for _ in range(levels - 1):
        low = F.conv2d(_symmetric_pad(j, 2), filt, groups=ch)[..., ::2, ::2]
        odd = (2 * low.shape[-2] - j.shape[-2], 2 * low.shape[-1] - j.shape[-1])
        padded = F.pad(low, (1, 1, 1, 1), mode="replicate")
        up = padded.new_zeros(*padded.shape[:2], 2 * padded.shape[-2], 2 * padded.shape[-1])
        up[..., ::2, ::2] = 4 * padded
        up = F.conv2d(up, filt, padding=2, groups=ch)
        up = up[..., 2:up.shape[-2] - 2 - odd[0], 2:up.shape[-1] - 2 - odd[1]]
        pyr.append(j - up)
        j = low
    pyr.append(j)
    return pyr


def normalized_laplacian(img: Tensor) -> list[Tensor]:
    """The NLP transform of ``NLP_dist.m`` (pyramid plus divisive normalisation).

    Shape: (N, C, H, W) in [0, 1] -> 6 tensors as :func:`laplacian_pyramid`.
    """
    ch = img.shape[1]
    dn = dn_filters(img.dtype, img.device).flip(-1, -2)  # conv2 turns the filter round
    out = []
    for k, band in enumerate(laplacian_pyramid(img)):
        denom = F.conv2d(band.abs(), dn[k].expand(ch, 1, 5, 5), padding=2, groups=ch)
        out.append(band / (SIGMAS[k] + denom))
    return out


def nlpd(pred: Tensor, ref: Tensor, *, color: Color = "gray", crop_border: int = 0) -> Tensor:
    """Normalised Laplacian pyramid distance. Lower is better, 0 for identical images.

    Shape: pred, ref (N, 3, H, W) in [0, 1], H, W >= 32 after cropping -> (N,) float64.

    Example:
        >>> x = torch.rand(2, 3, 64, 64)
        >>> nlpd(x, x)
        tensor([0., 0.], dtype=torch.float64)
    """
    check_images(pred, ref)
    a, b = crop(to_channels(pred, color), crop_border), crop(to_channels(ref, color), crop_border)
    if min(a.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"image {a.shape[-1]}x{a.shape[-2]} px (after cropping) is smaller "
                         f"than NLPD's {MIN_SIDE} px minimum")
    pa, pb = normalized_laplacian(a / 255.0), normalized_laplacian(b / 255.0)
    dists = [(x - y).pow(2).mean(dim=(1, 2, 3)).sqrt() for x, y in zip(pa, pb, strict=True)]
    return torch.stack(dists, dim=1).mean(dim=1)
