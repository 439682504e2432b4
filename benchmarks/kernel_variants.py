"""KernelGAN settings side by side on a simulated camera's footage (known true kernel).

    python benchmarks/adapt.py --out bench-adapt ...           # makes bench-adapt/footage
    python benchmarks/kernel_variants.py --footage bench-adapt/footage --kernel 4.0,1.0,60 \
        --frames 0,3 --variants base,it6000,avg.1

Each variant changes module constants of ``facesr.degrade.kernelgan`` (or the iterations) in
a forked worker of its own, estimates the x4 kernel of each chosen frame and prints its
centred L2 to the true kernel and its principal widths (sigma major / minor in HR px, angle).
An exploration tool: a variant that wins here must still be checked on natural images
(``benchmarks/kernel_estimation.py``) before it becomes a default.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "base": {},
    "nobic": {"W_BICUBIC": 0.0},  # no bicubic phase (the prefit start stays)
    "crop64": {"OUT_CROP": 64},  # larger G output / D input crops
    "sparse.005": {"W_SPARSE": 0.005},  # a light sparsity prior after the bicubic phase
    "it6000": {"iters": 6000},  # twice the iterations
    "avg.1": {"AVERAGE_FRACTION": 0.1},  # average the kernel over the last 10% only
    "combo": {"W_BICUBIC": 0.0, "OUT_CROP": 64, "W_SPARSE": 0.005},
    "combo6000": {"W_BICUBIC": 0.0, "OUT_CROP": 64, "W_SPARSE": 0.005, "iters": 6000},
    "combo12000": {"W_BICUBIC": 0.0, "OUT_CROP": 64, "W_SPARSE": 0.005, "iters": 12000},
}


def _job(args: tuple) -> tuple:
    var, path, true_k = args
    import torch

    torch.set_num_threads(1)
    from facesr.degrade import kernelgan
    from facesr.degrade.kernels import gaussian_kernel, principal_widths
    from facesr.io import read_image

    v = dict(VARIANTS[var])
    iters = v.pop("iters", kernelgan.DEFAULT_ITERS)
    for k, val in v.items():
        setattr(kernelgan, k, val)
    t0 = time.process_time()
    e = kernelgan.estimate_kernel(read_image(path), iters=iters, seed=0)
    true = gaussian_kernel(25, true_k[0], true_k[1], math.radians(true_k[2]))
    return (var, Path(path).name, kernelgan.centred_l2(e.kernel, true),
            principal_widths(e.kernel), time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--footage", type=Path, required=True, help="a folder of frameNN.png")
    ap.add_argument("--kernel", required=True, metavar="MAJOR,MINOR,DEG",
                    help="the true kernel (sigmas in HR px, angle)")
    ap.add_argument("--frames", default="0,3")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    true_k = tuple(float(v) for v in args.kernel.split(","))
    frames = [args.footage / f"frame{int(i):02d}.png" for i in args.frames.split(",")]
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v}; known: {', '.join(VARIANTS)}")
    jobs = [(v, str(f), true_k) for v in variants for f in frames]
    # a fresh worker per job: a variant's constants must not leak into the next job
    with mp.get_context("fork").Pool(args.jobs, maxtasksperchild=1) as pool:
        res = pool.map(_job, jobs, chunksize=1)
    print("| variant | frame | L2 | widths (major/minor/deg) | CPU s |\n|---|---|---|---|---|")
    by: dict[str, list[float]] = {}
    for var, name, l2, w, cpu in res:
        print(f"| {var} | {name} | {l2:.4f} | {w[0]:.2f}/{w[1]:.2f}/{w[2]:.0f} | {cpu:.0f} |")
        by.setdefault(var, []).append(l2)
    for var, l2s in by.items():
        print(f"{var}: mean L2 {np.mean(l2s):.4f}")


if __name__ == "__main__":
    main()
