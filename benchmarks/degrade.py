"""Degradation throughput, KernelGAN cost, and the kernel-estimation error table.

    python benchmarks/degrade.py                 # everything (KernelGAN part takes minutes)
    python benchmarks/degrade.py --skip-table      # KernelGAN timing without the table
    python benchmarks/degrade.py --skip-kernelgan

Prints (1) training pairs per second from the on-the-fly Dataset and from batched degradation,
(2) KernelGAN seconds per image at default iterations, (3) the kernel-estimation table of
benchmarks/kernel_estimation.py. Needs ../shared/data (faces).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facesr.data.dataset import DegradedFaces
from facesr.degrade.degradation import PRESETS, Pools, degrade_batch, sample_degradation
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def synthetic_pools(n_kernels: int = 16, n_noise: int = 64, seed: int = 0) -> Pools:
    """Pools of the right shapes (anisotropic Gaussians, Gaussian noise) for timing."""
    rng = np.random.default_rng(seed)
    ks = torch.stack([gaussian_kernel(25, *rng.uniform(0.8, 3.0, 2), rng.uniform(0, np.pi))
                      for _ in range(n_kernels)])
    noise = torch.from_numpy(rng.normal(0, 4 / 255, (n_noise, 3, 32, 32)).astype(np.float32))
    noise -= noise.mean(dim=(2, 3), keepdim=True)
    return Pools(KernelPool(ks, [{"source": f"g{i}"} for i in range(n_kernels)]),
                 NoisePool(noise, torch.zeros(n_noise, dtype=torch.long), [{"source": "g"}]))


def bench_pairs(files: list[Path], n: int) -> None:
    pools = synthetic_pools()
    ds = DegradedFaces(files, pools, PRESETS["paper"], hr_patch=128)
    idx = np.random.default_rng(0).integers(len(ds), size=n)
    ds[int(idx[0])]  # warm-up
    t = time.perf_counter()
    for i in idx:
        ds[int(i)]
    dt = time.perf_counter() - t
    print(f"Dataset (decode + crop + degrade, 1 process):  {n / dt:7.1f} pairs/s "
          f"({1000 * dt / n:.1f} ms/pair, {len(files)} HQ files)")

    hr = torch.rand(16, 3, 128, 128)
    rng = np.random.default_rng(0)
    params = [sample_degradation(rng, pools, PRESETS["paper"], (32, 32)) for _ in range(16)]
    degrade_batch(hr, params)
    reps = max(1, n // 16)
    t = time.perf_counter()
    for _ in range(reps):
        degrade_batch(hr, params)
    dt = time.perf_counter() - t
    print(f"degrade_batch (16 x 128px HR already in memory): {16 * reps / dt:7.1f} pairs/s")


def bench_kernelgan(files: list[Path], iters: int) -> None:
    from facesr.degrade.kernelgan import estimate_kernel
    from facesr.io import read_image

    img = read_image(files[0])[:, :128, :128]
    t = time.perf_counter()
    estimate_kernel(img, iters=iters, seed=0)
    dt = time.perf_counter() - t
    print(f"KernelGAN: {dt:.1f} s per image ({iters} iterations, 128x128 input, CPU, "
          f"{torch.get_num_threads()} threads)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hq", type=Path, default=SHARED / "data" / "faces_hq" / "alae512")
    ap.add_argument("--pairs", type=int, default=200, help="pairs to time")
    ap.add_argument("--iters", type=int, default=3000, help="KernelGAN iterations")
    ap.add_argument("--skip-kernelgan", action="store_true")
    ap.add_argument("--skip-table", action="store_true",
                    help="time KernelGAN but skip the (long) kernel-estimation table")
    ap.add_argument("--table-images", type=int, default=4,
                    help="images in the kernel-estimation table")
    args = ap.parse_args(argv)
    files = sorted(args.hq.glob("*.png")) + sorted(args.hq.glob("*.jpg"))
    if not files:
        sys.exit(f"no HQ faces in {args.hq} (needs ../shared/data)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    bench_pairs(files, args.pairs)
    if not args.skip_kernelgan:
        bench_kernelgan(files, args.iters)
    if not args.skip_kernelgan and not args.skip_table:
        sys.path.insert(0, str(HERE))
        import kernel_estimation

        print()
        kernel_estimation.main(["--images", str(args.table_images), "--iters", str(args.iters)])


if __name__ == "__main__":
    main()
