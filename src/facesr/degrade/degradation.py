"""The real-world degradation: I_LR = (I_HR * k) downsampled by s + n, then JPEG.

Sampling is separate from applying: ``sample_degradation(rng, pools, cfg, lr_size)`` draws a
:class:`DegradeParams` whose ``record`` is a small JSON-able description (kernel index, noise
patch index and flip or a Gaussian seed, JPEG quality) that ``params_from_record`` turns
back into the same parameters, so every pair can be logged and replayed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from facesr.config import ConfigError, from_dict
from facesr.degrade.jpeg import jpeg_roundtrip, quantize8
from facesr.degrade.kernels import bicubic_kernel, blur_downsample, gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool


@dataclass(frozen=True)
class DegradeConfig:
    """How degradations are drawn. Noise sigma is on the 0-255 scale."""

    scale: int = 4
    kernel: Literal["pool", "bicubic", "gaussian"] = "pool"
    # kernel "gaussian": anisotropic Gaussian, both sigmas (HR px) uniform in this range,
    # angle uniform in [0, pi)
    blur_sigma: tuple[float, float] = (0.8, 3.0)
    # kernel "pool": draw such a Gaussian instead of a pool kernel with this probability (a
    # default model must also serve cameras whose blur nobody measured)
    gaussian_prob: float = 0.0
    # noise "pool": draw white Gaussian noise instead of a pool patch with this probability,
    # its sigma uniform in [0.5, 1.5] x noise_sigma (sensor noise before the camera's codec)
    gaussian_noise_prob: float = 0.0
    noise: Literal["pool", "gaussian", "none"] = "pool"
    noise_prob: float = 1.0
    noise_sigma: float = 8.0
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[int, int] = (30, 30)  # inclusive range, drawn uniformly
    quantize: bool = True  # round the LR to 8 bits, as a stored camera image is

    def __post_init__(self) -> None:
        if self.kernel not in ("pool", "bicubic", "gaussian"):
            raise ValueError(f"kernel must be 'pool', 'bicubic' or 'gaussian', got "
                             f"{self.kernel!r}")
        lo_s, hi_s = self.blur_sigma
        if not 0 < lo_s <= hi_s:
            raise ValueError(f"blur_sigma must be a range 0 < low <= high, got {self.blur_sigma}")
        if self.noise not in ("pool", "gaussian", "none"):
            raise ValueError(f"noise must be 'pool', 'gaussian' or 'none', got {self.noise!r}")
        for name in ("noise_prob", "jpeg_prob", "gaussian_prob", "gaussian_noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must be a range within 1..100, got {self.jpeg_quality}")
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}")

    @classmethod
    def from_dict(cls, d: Mapping, *, where: str = "") -> DegradeConfig:
        """Strict, through the package's config loader: an unknown key or a wrong type (a float
        for an int, a string for a bool) is a :class:`facesr.config.ConfigError` naming the key.

        ``jpeg_quality`` and ``blur_sigma`` also take one number for a fixed value (30 ->
        (30, 30)).

        Args:
            where: key prefix for messages, e.g. ``"data.degrade."``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where.rstrip('.') or 'degradation settings'} must be a "
                              f"mapping of keys, got {type(d).__name__}")
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{where.rstrip('.') + ': ' if where else ''}unknown degradation "
                              f"settings {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for key in ("jpeg_quality", "blur_sigma"):  # one number: a fixed value
            if key in d and not isinstance(d[key], list | tuple):
                d[key] = [d[key], d[key]]
        try:
            return from_dict(cls, d, where=where)
        except ConfigError:
            raise
        except ValueError as e:  # __post_init__'s range checks
            raise ConfigError(f"{where}{e}" if where else str(e)) from None


PRESETS: dict[str, DegradeConfig] = {
    # the paper's training degradation: pool kernel, pool noise, JPEG 30 with probability 0.9
    "paper": DegradeConfig(),
    # ablation steps
    "kernels-noise": DegradeConfig(jpeg_prob=0.0),
    "bicubic": DegradeConfig(kernel="bicubic", noise="none", jpeg_prob=0.0),
    # the paper's synthetic test protocol: pool kernel, Gaussian sigma 8, JPEG 30 always
    "synthetic": DegradeConfig(noise="gaussian", noise_sigma=8.0, jpeg_prob=1.0),
    # the sharp-face protocol: no camera's kernels but a range of blurs (anisotropic Gaussian,
    # sigma 0.8-3.0 HR px), Gaussian noise sigma 8, JPEG 30 always; `facesr evaluate
    # synthetic --preset sharp` also brings the faces to 256 px first
    "sharp": DegradeConfig(kernel="gaussian", noise="gaussian", noise_sigma=8.0, jpeg_prob=1.0),
}


@dataclass(frozen=True)
class Pools:
    kernels: KernelPool | None = None
    noise: NoisePool | None = None


@dataclass(frozen=True)
class DegradeParams:
    """One sampled degradation, ready to apply to an HR image whose LR size is ``lr_size``."""

    kernel: Tensor  # (K, K)
    noise: Tensor | None  # (3, h, w) on the [0, 1] scale
    jpeg_quality: int | None
    quantize: bool
    lr_size: tuple[int, int]
    record: dict


def sample_degradation(rng: np.random.Generator, pools: Pools, cfg: DegradeConfig,
                       lr_size: tuple[int, int]) -> DegradeParams:
    """Draw one degradation for an LR image of ``lr_size`` = (h, w)."""
    rec: dict = {"scale": cfg.scale, "quantize": cfg.quantize}
    # no draw when gaussian_prob is 0, so older configs draw exactly what they drew before
    gaussian = cfg.kernel == "gaussian" or (
        cfg.kernel == "pool" and cfg.gaussian_prob > 0 and rng.random() < cfg.gaussian_prob)
    if cfg.kernel == "pool" and not gaussian:
        if pools.kernels is None:
            raise ValueError("this degradation needs a kernel pool (--kernels FILE)")
        rec["kernel"] = int(rng.integers(len(pools.kernels)))
    elif gaussian:
        sx, sy = (float(v) for v in rng.uniform(*cfg.blur_sigma, size=2))
        rec["kernel"] = {"kind": "gaussian", "sigma_x": round(sx, 4), "sigma_y": round(sy, 4),
                         "theta": round(float(rng.uniform(0.0, math.pi)), 4)}
    else:
        rec["kernel"] = "bicubic"
    rec["noise"] = None
    if cfg.noise != "none" and rng.random() < cfg.noise_prob:
        white = cfg.noise == "pool" and cfg.gaussian_noise_prob > 0 and (
            rng.random() < cfg.gaussian_noise_prob)
        if white:
            rec["noise"] = {"kind": "gaussian",
                            "sigma": round(float(rng.uniform(0.5, 1.5)) * cfg.noise_sigma, 4),
                            "seed": int(rng.integers(2**31 - 1))}
        elif cfg.noise == "pool":
            if pools.noise is None:
                raise ValueError("this degradation needs a noise pool (--noise FILE)")
            rec["noise"] = {"kind": "pool", "index": int(rng.integers(len(pools.noise))),
                            "flip": int(rng.integers(4))}
        else:
            rec["noise"] = {"kind": "gaussian", "sigma": cfg.noise_sigma,
                            "seed": int(rng.integers(2**31 - 1))}
    rec["jpeg_quality"] = None
    if rng.random() < cfg.jpeg_prob:
        rec["jpeg_quality"] = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    return params_from_record(rec, pools, lr_size)


def params_from_record(record: dict, pools: Pools, lr_size: tuple[int, int]) -> DegradeParams:
    """Rebuild the parameters a ``sample_degradation`` record describes."""
    scale = int(record["scale"])
    if record["kernel"] == "bicubic":
        kernel = bicubic_kernel(scale, _kernel_size(pools, scale))
    elif isinstance(record["kernel"], dict):
        k = record["kernel"]
        kernel = gaussian_kernel(_kernel_size(pools, scale), float(k["sigma_x"]),
                                 float(k["sigma_y"]), float(k["theta"]))
    else:
        if pools.kernels is None:
            raise ValueError("record names a pool kernel but no kernel pool was given")
        kernel = pools.kernels.kernels[int(record["kernel"])]
    noise = None
    nrec = record.get("noise")
    if nrec is not None and nrec["kind"] == "pool":
        if pools.noise is None:
            raise ValueError("record names pool noise but no noise pool was given")
        noise = mirror_tile(pools.noise.patches[int(nrec["index"])], int(nrec["flip"]), lr_size)
    elif nrec is not None:
        g = torch.Generator().manual_seed(int(nrec["seed"]))
        noise = torch.randn(3, *lr_size, generator=g) * (float(nrec["sigma"]) / 255.0)
    return DegradeParams(kernel, noise, record.get("jpeg_quality"), bool(record["quantize"]),
                         tuple(lr_size), dict(record))


def _kernel_size(pools: Pools, scale: int) -> int:
    if pools.kernels is not None:
        return int(pools.kernels.kernels.shape[-1])
    return 6 * scale + 1


def mirror_tile(patch: Tensor, flip: int, lr_size: tuple[int, int]) -> Tensor:
    """One noise patch, flipped as ``flip`` says (bit 0: left-right, bit 1: up-down), covering
    (h, w) by mirrored tiling when the LR is larger than the patch (no seams, period 2p).

    Shape: (3, p, p) -> (3, h, w).
    """
    if flip & 1:
        patch = patch.flip(-1)
    if flip & 2:
        patch = patch.flip(-2)
    h, w = lr_size
    ny, nx = math.ceil(h / (2 * patch.shape[-2])), math.ceil(w / (2 * patch.shape[-1]))
    row = torch.cat([patch, patch.flip(-1)], dim=-1).repeat(1, 1, nx)
    field = torch.cat([row, row.flip(-2)], dim=-2).repeat(1, ny, 1)
    return field[:, :h, :w].contiguous()


def degrade(hr: Tensor, params: DegradeParams) -> Tensor:
    """Apply one sampled real-world degradation.

    Shape: hr (3, H, W) in [0, 1], H and W divisible by scale -> (3, H/scale, W/scale) in [0, 1].
    """
    return degrade_batch(hr.unsqueeze(0), [params])[0]


def degrade_batch(hr: Tensor, params: list[DegradeParams]) -> Tensor:
    """Degrade a batch, each image with its own parameters, blurring in one grouped conv.

    Shape: hr (N, 3, H, W) in [0, 1] -> (N, 3, H/s, W/s); all params share scale and kernel size.
    """
    if hr.ndim != 4 or hr.shape[0] != len(params):
        raise ValueError(f"{len(params)} params for a batch of shape {tuple(hr.shape)}")
    scales = {int(p.record["scale"]) for p in params}
    if len(scales) != 1:
        raise ValueError(f"mixed scales in one batch: {sorted(scales)}")
    scale = scales.pop()
    kernels = torch.stack([p.kernel for p in params])
    return add_noise_and_compress(blur_downsample(hr, kernels, scale), params)


def add_noise_and_compress(lr: Tensor, params: list[DegradeParams]) -> Tensor:
    """The steps after blur and subsampling: add noise, clamp, JPEG (or 8-bit rounding).

    Shape: lr (N, 3, h, w) in [0, 1] -> same.
    """
    lr_size = tuple(lr.shape[-2:])
    if lr.ndim != 4 or lr.shape[0] != len(params):
        raise ValueError(f"{len(params)} params for a batch of shape {tuple(lr.shape)}")
    if any(tuple(p.lr_size) != lr_size for p in params):
        raise ValueError(f"params drawn for another LR size than {lr_size}")
    if any(p.noise is not None for p in params):
        noise = torch.stack([p.noise if p.noise is not None else torch.zeros(3, *lr_size)
                             for p in params]).to(lr)
        lr = lr + noise
    lr = lr.clamp(0, 1)
    out = []
    for x, p in zip(lr, params, strict=True):
        if p.jpeg_quality is not None:
            x = jpeg_roundtrip(x, int(p.jpeg_quality))
        elif p.quantize:
            x = quantize8(x)
        out.append(x)
    return torch.stack(out)
