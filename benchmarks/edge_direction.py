"""Where the edge check's blur direction can be trusted (``facesr.degrade.edges``).

    python benchmarks/edge_direction.py
    python benchmarks/edge_direction.py --footage bench-adapt/footage   # a camera's stills

Protocol: the images of ``benchmarks/kernel_estimation.py`` (scikit-image photographs and a
dead-leaves image: flat discs, step edges in every direction) are blurred by known anisotropic
Gaussian x4 kernels and subsampled x4, once clean and once with the simulated camera's noise
(sigma 5) and JPEG 40; the edge reading's direction is compared with the kernel's (angle error
in degrees, modulo 180) beside its anisotropy and the number of clean edge pixels it rests on.
With ``--footage``, each still of a folder is read and the readings combined as ``facesr adapt``
does (``profile.edge_check``'s firmness rule).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from facesr.degrade.edges import angle_difference, combine, edge_blur
from facesr.degrade.jpeg import jpeg_roundtrip, quantize8
from facesr.degrade.kernels import blur_downsample, gaussian_kernel

KERNELS = ((3.5, 1.0, 45.0), (4.0, 2.0, 57.0), (2.5, 1.5, 120.0), (4.0, 1.0, 150.0),
           (3.0, 1.0, 0.0), (1.5, 1.2, 17.0))
NAMES = ("dead_leaves", "astronaut", "coffee", "rocket", "chelsea")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", default=",".join(NAMES))
    ap.add_argument("--footage", type=Path, default=None,
                    help="also read every image of this folder (a camera's stills)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from kernel_estimation import load  # noqa: PLC0415  (this folder, run as a script)

    print("| image | true kernel (sigma/sigma/deg) | clean: angle (error), anisotropy | "
          "noise 5 + JPEG 40: angle (error), anisotropy |\n|---|---|---|---|")
    errors: dict[str, list[float]] = {}
    for name in args.names.split(","):
        hr = load(name)
        for major, minor, deg in KERNELS:
            lr = blur_downsample(hr, gaussian_kernel(25, major, minor, math.radians(deg)), 4)
            lr = quantize8(lr.clamp(0, 1))
            g = torch.Generator().manual_seed(0)
            cam = jpeg_roundtrip((lr + torch.randn(lr.shape, generator=g) * 5 / 255)
                                 .clamp(0, 1), 40)
            cells = []
            for img in (lr, cam):
                r = edge_blur(img.permute(1, 2, 0).numpy())
                if r is None:
                    cells.append("no reading")
                    continue
                err = abs(angle_difference(r.angle, deg))
                if major / minor >= 1.5:
                    errors.setdefault(name, []).append(err)
                cells.append(f"{r.angle:.0f} ({err:.0f}), {r.anisotropy:.2f}")
            print(f"| {name} | {major} / {minor} / {deg:.0f} | {cells[0]} | {cells[1]} |")
    print("\nmedian angle error over the kernels elongated 1.5:1 or more (both columns):")
    for name, errs in errors.items():
        print(f"- {name}: {np.median(errs):.1f} degrees (worst {max(errs):.0f})")
    if args.footage:
        from facesr.io import read_image_array

        readings = []
        for f in sorted(args.footage.iterdir()):
            if f.suffix.lower() in (".png", ".jpg", ".jpeg"):
                r = edge_blur(read_image_array(f))
                print(f"{f.name}: " + ("no reading" if r is None else
                                       f"{r.angle:.1f} deg, anisotropy {r.anisotropy:.3f}, "
                                       f"{r.edges} edge pixels"))
                if r is not None:
                    readings.append(r)
        print(f"combined: {combine(readings)}")


if __name__ == "__main__":
    main()
