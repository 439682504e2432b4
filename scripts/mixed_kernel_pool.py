"""Widen a camera's kernel pool with Gaussian blurs, for a default model that must serve
cameras nobody measured (facesr-default was trained on this; see its model card).

    python scripts/mixed_kernel_pool.py pools/kernels.safetensors --out pools/mixed.safetensors

Adds 6 isotropic Gaussians (sigma 0.8-2.8 HR px) and 8 anisotropic ones (sigmas 2.4/1.2 and
1.8/1.0 at 0, 45, 90, 135 degrees), all 25x25 like KernelGAN's x4 kernels.
"""

from __future__ import annotations

import argparse
import math

import torch

from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool

ISO = (0.8, 1.2, 1.6, 2.0, 2.4, 2.8)
ANISO = ((2.4, 1.2), (1.8, 1.0))
ANGLES = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pool", help="a kernel pool from `facesr pool kernels`")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    pool = KernelPool.load(args.pool)
    size = int(pool.kernels.shape[-1])
    extra, sources = [], []
    for s in ISO:
        extra.append(gaussian_kernel(size, s))
        sources.append({"source": f"gaussian sigma {s}"})
    for sx, sy in ANISO:
        for a in ANGLES:
            extra.append(gaussian_kernel(size, sx, sy, a))
            sources.append({"source": f"gaussian sigma {sx}/{sy} angle {a:.3f}"})
    mixed = KernelPool(torch.cat([pool.kernels, torch.stack(extra)]), pool.sources + sources,
                       pool.scale, {**pool.settings, "gaussians_added": len(extra)})
    mixed.save(args.out)
    print(f"wrote {args.out}: {len(pool)} kernels from {args.pool} + {len(extra)} Gaussians")


if __name__ == "__main__":
    main()
