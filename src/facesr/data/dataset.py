"""On-the-fly training pairs: the same degradation as ``facesr pairs``, no pairs on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from facesr.degrade.degradation import (
    DegradeConfig,
    Pools,
    add_noise_and_compress,
    sample_degradation,
)
from facesr.degrade.kernels import blur_downsample
from facesr.degrade.pairs import HR_FACTORS, bicubic_resize, variant_size
from facesr.io import image_size, read_image


class DegradedFaces(Dataset):
    """Random HR crops of clean faces and their degraded LR, drawn afresh each epoch.

    Every HR image is used at each of ``factors`` (bicubic downscaling) whose size still holds an
    ``hr_patch`` crop. Each item: a random crop (with flips when ``augment``), blurred with a
    margin so the kernel never sees a border, then noise and JPEG as ``degrade`` does. Items are
    deterministic in (seed, epoch, index): call ``set_epoch`` to draw new ones.

    Returns dicts ``{"lr": (3, p, p), "hr": (3, p*s, p*s), "record": dict}``.
    """

    def __init__(self, files: list[str | os.PathLike], pools: Pools, cfg: DegradeConfig, *,
                 hr_patch: int = 128, factors: tuple[float, ...] = HR_FACTORS, seed: int = 0,
                 augment: bool = True) -> None:
        s = cfg.scale
        if hr_patch % s:
            raise ValueError(f"hr_patch {hr_patch} is not divisible by the scale {s}")
        self.pools, self.cfg, self.hr_patch = pools, cfg, hr_patch
        self.seed, self.augment, self.epoch = seed, augment, 0
        ksize = int(pools.kernels.kernels.shape[-1]) if pools.kernels else 6 * s + 1
        self.margin = -(-(ksize // 2 + 1) // s) * s  # >= kernel radius, a multiple of s
        self.entries: list[tuple[Path, float]] = []
        for f in files:
            h, w = image_size(f)
            for fac in factors:
                vh, vw = variant_size(h, w, fac, s)
                if min(vh, vw) >= hr_patch:
                    self.entries.append((Path(f), float(fac)))
        if not self.entries:
            raise ValueError(f"no image of the {len(files)} given holds a {hr_patch} px crop")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        path, fac = self.entries[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        img = read_image(path)
        if fac != 1.0:
            h, w = img.shape[-2:]
            img = bicubic_resize(img, (round(h * fac), round(w * fac)))
        hr, lr, record = self.crop_pair(img, rng)
        record = {"file": str(path), "factor": fac, **record}
        return {"lr": lr, "hr": hr, "record": record}

    def crop_pair(self, img: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor, dict]:
        """One random (HR crop, LR) pair from an image at least ``hr_patch`` on each side."""
        p, m, s = self.hr_patch, self.margin, self.cfg.scale
        h, w = img.shape[-2:]
        y = int(rng.integers(0, h - p + 1))
        x = int(rng.integers(0, w - p + 1))
        padded = F.pad(img.unsqueeze(0), (m, m, m, m), mode="reflect")[0]
        region = padded[:, y:y + p + 2 * m, x:x + p + 2 * m]
        if self.augment:
            if rng.random() < 0.5:
                region = region.flip(-1)
            if rng.random() < 0.5:
                region = region.transpose(-1, -2)
        region = region.contiguous()
        params = sample_degradation(rng, self.pools, self.cfg, (p // s, p // s))
        blurred = blur_downsample(region, params.kernel, s)
        ml = m // s
        lr = blurred[:, ml:ml + p // s, ml:ml + p // s].unsqueeze(0)
        lr = add_noise_and_compress(lr, [params])[0]
        hr = region[:, m:m + p, m:m + p].contiguous()
        return hr, lr, {"y": y, "x": x, **params.record}


def collate_pairs(items: list[dict]) -> dict:
    """Batch ``DegradedFaces`` items: stacked tensors, records as a list."""
    return {
        "lr": torch.stack([it["lr"] for it in items]),
        "hr": torch.stack([it["hr"] for it in items]),
        "record": [it["record"] for it in items],
    }
