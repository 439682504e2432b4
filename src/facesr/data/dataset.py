"""On-the-fly training pairs: the same degradation as ``facesr pairs``, no pairs on disk.

With ``burst`` the LR is instead the fused crop of a synthetic burst (issue 17): the HR region
seen N times with its own sub-pixel shift and small rotation, each frame blurred by the same
kernel (one camera) with its own noise draw and JPEG, then registered and averaged by
:func:`facesr.infer.burst.fuse` onto the unshifted reference frame, exactly as
``facesr.upscale_burst`` does before its model. A model trained on these pairs sees what
``--fuse`` gives it: less noise and JPEG than one frame, some registration blur.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from facesr.degrade.degradation import (
    DegradeConfig,
    Pools,
    add_noise_and_compress,
    params_from_record,
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

    ``burst`` = (lo, hi): each LR is instead a fused burst of lo..hi frames (drawn uniformly;
    see the module docstring): frames but the first shifted by up to ``burst_shift`` HR px in x
    and y and turned by up to ``burst_rotate`` degrees.

    Returns dicts ``{"lr": (3, p, p), "hr": (3, p*s, p*s), "record": dict}``.
    """

    def __init__(self, files: list[str | os.PathLike], pools: Pools, cfg: DegradeConfig, *,
                 hr_patch: int = 128, factors: tuple[float, ...] = HR_FACTORS, seed: int = 0,
                 augment: bool = True, burst: tuple[int, int] | None = None,
                 burst_shift: float = 4.0, burst_rotate: float = 2.0) -> None:
        s = cfg.scale
        if hr_patch % s:
            raise ValueError(f"hr_patch {hr_patch} is not divisible by the scale {s}")
        if burst is not None and not 1 <= burst[0] <= burst[1]:
            raise ValueError(f"burst must be a range 1 <= low <= high frames, got {burst}")
        self.pools, self.cfg, self.hr_patch = pools, cfg, hr_patch
        self.seed, self.augment, self.epoch = seed, augment, 0
        self.burst, self.burst_shift, self.burst_rotate = burst, burst_shift, burst_rotate
        ksize = int(pools.kernels.kernels.shape[-1]) if pools.kernels else 6 * s + 1
        radius = ksize // 2 + 1 + (math.ceil(burst_shift) + 2 if burst else 0)
        self.margin = -(-radius // s) * s  # >= kernel radius (+ shift), a multiple of s
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
        if self.burst is not None:
            return self._burst_pair(region, rng)
        params = sample_degradation(rng, self.pools, self.cfg, (p // s, p // s))
        blurred = blur_downsample(region, params.kernel, s)
        ml = m // s
        lr = blurred[:, ml:ml + p // s, ml:ml + p // s].unsqueeze(0)
        lr = add_noise_and_compress(lr, [params])[0]
        hr = region[:, m:m + p, m:m + p].contiguous()
        return hr, lr, {"y": y, "x": x, **params.record}

    def _burst_pair(self, region: Tensor, rng: np.random.Generator
                    ) -> tuple[Tensor, Tensor, dict]:
        """(HR crop, fused LR) of a burst of ``region`` (the crop with its margins)."""
        from facesr.infer.burst import fuse

        p, m, s = self.hr_patch, self.margin, self.cfg.scale
        side = region.shape[-1]
        lr_side, ml = side // s, m // s
        params = sample_degradation(rng, self.pools, self.cfg, (lr_side, lr_side))
        n = int(rng.integers(self.burst[0], self.burst[1] + 1))
        arr = region.permute(1, 2, 0).numpy()
        centre = (side - 1) / 2
        frames = []
        for i in range(n):
            img, rec = region, params.record
            if i:
                dx, dy = (float(v) for v in rng.uniform(-self.burst_shift, self.burst_shift, 2))
                deg = float(rng.uniform(-self.burst_rotate, self.burst_rotate))
                warp = cv2.getRotationMatrix2D((centre, centre), deg, 1.0)
                warp[:, 2] += (dx, dy)
                img = torch.from_numpy(np.ascontiguousarray(cv2.warpAffine(
                    arr, warp, (side, side), flags=cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_REFLECT101))).permute(2, 0, 1)
                # same camera: kernel, noise kind and JPEG quality; a new noise draw
                rec = _redraw_noise(rec, rng, len(self.pools.noise) if self.pools.noise else 0)
            p_i = params if not i else params_from_record(rec, self.pools, (lr_side, lr_side))
            lr = blur_downsample(img.clamp(0, 1), p_i.kernel, s).unsqueeze(0)
            frames.append(add_noise_and_compress(lr, [p_i])[0])
        fused, used, _, _ = fuse(frames, 0)
        lr = fused[:, ml:ml + p // s, ml:ml + p // s].contiguous()
        hr = region[:, m:m + p, m:m + p].contiguous()
        return hr, lr, {**params.record, "burst": n, "burst_used": len(used)}


def _redraw_noise(record: dict, rng: np.random.Generator, pool_size: int) -> dict:
    """``record`` with a new draw of the same noise (another seed, or another of the
    ``pool_size`` pool patches and flip)."""
    rec, noise = dict(record), record.get("noise")
    if isinstance(noise, dict) and noise["kind"] == "gaussian":
        rec["noise"] = {**noise, "seed": int(rng.integers(2**31 - 1))}
    elif isinstance(noise, dict):
        rec["noise"] = {**noise, "index": int(rng.integers(pool_size)),
                        "flip": int(rng.integers(4))}
    return rec


def collate_pairs(items: list[dict]) -> dict:
    """Batch ``DegradedFaces`` items: stacked tensors, records as a list."""
    return {
        "lr": torch.stack([it["lr"] for it in items]),
        "hr": torch.stack([it["hr"] for it in items]),
        "record": [it["record"] for it in items],
    }
