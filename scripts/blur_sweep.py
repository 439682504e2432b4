"""PSNR-Y gain over bicubic as a function of the input blur width, for x4 models.

    python scripts/blur_sweep.py facesr-default eval/models/facesr-rrdb23.safetensors \
        --faces ../shared/data/faces_hq/ffhq512 --count 6 [--kernels pools/kernels.safetensors]

Each face (area-resized to 192 px) is blurred with an isotropic Gaussian of each sigma (HR
px; and with kernels 0 and 5 of ``--kernels`` when given), x4 down, Gaussian noise sigma 8 and
JPEG 30 (the synthetic protocol's noise and compression), then upscaled by bicubic and by each
model (fp32). Prints one Markdown row per model: mean PSNR-Y gain over bicubic (4 px border)
per blur. A model trained only on wide blurs over-sharpens narrow ones (negative gains); a
default model for unknown cameras should not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from facesr.degrade.degradation import DegradeParams, degrade
from facesr.degrade.jpeg import quantize8
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool
from facesr.infer.pipeline import resample, torch_runner, upscale_face
from facesr.io import read_image
from facesr.metrics import psnr
from facesr.models import load

SIDE = 192  # HR faces are area-resized to SIDE px
LR = (SIDE // 4, SIDE // 4)
SIGMAS = (0.8, 1.2, 1.8, 2.5, 3.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model names or weight files")
    ap.add_argument("--faces", type=Path, default=Path("../shared/data/faces_hq/ffhq512"))
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--kernels", type=Path, help="kernel pool: also kernels 0 and 5 of it")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    files = files[:args.count]
    if not files:
        raise SystemExit(f"{args.faces}: no .png/.jpg faces")
    blurs = {f"{s}": gaussian_kernel(25, s) for s in SIGMAS}
    if args.kernels:
        pool = KernelPool.load(args.kernels)
        blurs |= {f"footage k{i}": pool.kernels[i] for i in (0, 5) if i < len(pool.kernels)}
    hrs = [F.interpolate(read_image(f)[None], size=(SIDE, SIDE), mode="area")[0] for f in files]
    runners = {m: torch_runner(load(m)[0]) for m in args.models}
    gains: dict[str, list[float]] = {m: [] for m in args.models}
    for name, k in blurs.items():
        gen = torch.Generator().manual_seed(0)
        per_model: dict[str, list[float]] = {m: [] for m in args.models}
        for hr in hrs:
            noise = torch.randn(3, *LR, generator=gen) * 8 / 255  # sigma 8, then JPEG 30
            lr = degrade(hr, DegradeParams(k, noise, 30, True, LR, {"scale": 4}))
            base = psnr(quantize8(resample(lr, 4, "bicubic"))[None], hr[None], crop_border=4)
            for m, run in runners.items():
                sr = quantize8(upscale_face(lr, run))
                per_model[m].append(float(psnr(sr[None], hr[None], crop_border=4) - base))
        for m in args.models:
            gains[m].append(sum(per_model[m]) / len(per_model[m]))
        print(f"blur {name}: " + ", ".join(f"{m} {gains[m][-1]:+.2f}" for m in args.models),
              flush=True)
    print(f"\nPSNR-Y gain over bicubic (dB), {len(files)} faces of {args.faces}\n")
    print("| model | " + " | ".join(blurs) + " |")
    print("|---|" + "---|" * len(blurs))
    for m in args.models:
        print(f"| {m} | " + " | ".join(f"{g:+.2f}" for g in gains[m]) + " |")


if __name__ == "__main__":
    main()
