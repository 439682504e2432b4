"""A camera facesr has never seen: does ``facesr adapt`` learn it, and does that pay off?

    python benchmarks/adapt.py --out bench-adapt                 # 30 min of adaptation
    python benchmarks/adapt.py --out bench-adapt --minutes 10 --faces 20

The simulated camera: clean HR scenes (a dead-leaves background, scale-invariant as KernelGAN
assumes, with clean faces from ``celebahq`` pasted at 48-256 px) are blurred by a known
anisotropic Gaussian (``TRUE_KERNEL``: sigma 4.0 x 1.0 HR px at 60 degrees, outside the range
facesr-default was trained on: 0.8-3.0), subsampled x4, given Gaussian noise (sigma
``NOISE``) and JPEG (quality ``JPEG``): ``FRAMES`` stills of 1024x768 (LR 256x192) in
``OUT/footage``. Then:

1. ``facesr adapt OUT/footage --out OUT/camera --minutes M --threads 1 --base B`` (the real
   command; target faces: its default, the London neutral and Canada sets; ``--base``:
   facesr-default unless given, and measured beside the adapted model when another;
   ``--distill`` adds ``--distill``: the adapted base, measured as "teacher", is distilled into
   facesr-default, the "adapted" model);
2. (a) the estimated kernels training used against the true one (centred L2, as
   ``benchmarks/kernel_estimation.py``; with ``--kernel-angle edges``, after the edge check
   turned them, and KernelGAN's own beside them), and the bicubic kernel's L2 as the baseline;
3. (b) held-out faces (``alae512``: people in neither the adaptation's faces nor the scenes),
   at 128 px, degraded by *the camera itself* (true kernel, noise, JPEG), enlarged by bicubic,
   facesr-default and the adapted model (``facesr.upscale_face``, as ``facesr upscale``):
   PSNR-Y and LPIPS, mean and 95% interval, and the paired difference per face.

Writes ``OUT/results.json`` and prints Markdown tables. Needs ``../shared/data`` and
``../shared/weights`` (LPIPS).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
TRUE_KERNEL = (4.0, 1.0, 60.0)  # sigma major, sigma minor (HR px), angle (degrees)
NOISE = 5.0  # Gaussian noise sigma, 0-255 levels
JPEG = 40
FRAMES = 8
SCENE = (768, 1024)  # HR height, width


def camera(hr: torch.Tensor, seed: int) -> torch.Tensor:
    """The simulated camera: true kernel, x4, noise, JPEG. (3, H, W) -> (3, H/4, W/4)."""
    from facesr.degrade.jpeg import jpeg_roundtrip, quantize8
    from facesr.degrade.kernels import blur_downsample, gaussian_kernel

    k = gaussian_kernel(25, TRUE_KERNEL[0], TRUE_KERNEL[1], math.radians(TRUE_KERNEL[2]))
    lr = blur_downsample(hr, k, 4)
    g = torch.Generator().manual_seed(seed)
    lr = lr + torch.randn(lr.shape, generator=g) * (NOISE / 255.0)
    return jpeg_roundtrip(quantize8(lr.clamp(0, 1)), JPEG)


def scene(seed: int, faces: list[Path]) -> torch.Tensor:
    """Dead leaves with clean faces pasted in at random sizes. -> (3, H, W) in [0, 1]."""
    import cv2

    from facesr.io import read_image_array

    sys.path.insert(0, str(HERE))
    from kernel_estimation import dead_leaves

    rng = np.random.default_rng(seed)
    h, w = SCENE
    bg = dead_leaves(max(h, w), seed)[:, :h, :w].permute(1, 2, 0).numpy().copy()
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)  # a coloured scene, not grey
    img = bg * tint
    for f in rng.choice(len(faces), 5, replace=False):
        side = int(rng.integers(48, 257))
        face = cv2.resize(read_image_array(faces[f]), (side, side), interpolation=cv2.INTER_AREA)
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        img[y:y + side, x:x + side] = face
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).clamp(0, 1)


def ci(values: list[float]) -> dict:
    from facesr.eval.stats import mean_ci

    r = mean_ci(values)
    return {"mean": r.mean, "low": r.low, "high": r.high, "n": len(values),
            "min": min(values), "max": max(values), "above_zero": sum(v > 0 for v in values)}


def main(argv: list[str] | None = None) -> None:
    global TRUE_KERNEL, NOISE, JPEG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-adapt"))
    ap.add_argument("--minutes", type=float, default=30.0, help="facesr adapt --minutes")
    ap.add_argument("--faces", type=int, default=40, help="held-out test faces (alae512)")
    ap.add_argument("--hq", type=Path, action="append", default=None,
                    help="facesr adapt --hq (repeatable; default: adapt's own default faces)")
    ap.add_argument("--iters", type=int, default=None, help="facesr adapt --iters")
    ap.add_argument("--kernel-prior", default="default", choices=("default", "thin"),
                    help="facesr adapt --kernel-prior")
    ap.add_argument("--kernel-stills", type=int, default=None,
                    help="facesr adapt --kernel-stills (default: adapt's)")
    ap.add_argument("--kernel", default=None, metavar="MAJOR,MINOR,DEG",
                    help="the camera's true kernel (sigmas in HR px, angle; default "
                         f"{','.join(map(str, TRUE_KERNEL))})")
    ap.add_argument("--noise", type=float, default=NOISE,
                    help=f"the camera's Gaussian noise sigma, 0-255 (default {NOISE})")
    ap.add_argument("--jpeg", type=int, default=JPEG,
                    help=f"the camera's JPEG quality (default {JPEG})")
    ap.add_argument("--iterations", type=int, default=None,
                    help="facesr adapt --iterations (instead of --minutes: a fixed length, "
                         "whatever the machine's load)")
    ap.add_argument("--base", default="facesr-default",
                    help="facesr adapt --base (the model fine-tuned); measured beside it")
    ap.add_argument("--distill", action="store_true",
                    help="facesr adapt --distill (the adapted base distilled into "
                         "facesr-default); the teacher is measured beside")
    ap.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16"),
                    help="facesr adapt --precision (default: adapt's, auto)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="facesr adapt --jobs (parallel KernelGAN runs; default: adapt's, one "
                         "per core; 1 keeps the whole command on one thread)")
    ap.add_argument("--seed", type=int, default=None,
                    help="facesr adapt --seed (its kernel crops, training order and held-out "
                         "faces; the simulated camera and the test faces stay the same)")
    ap.add_argument("--kernel-angle", default=None, choices=("kernelgan", "edges"),
                    help="facesr adapt --kernel-angle")
    ap.add_argument("--lr", type=float, default=None, help="facesr adapt --lr")
    ap.add_argument("--skip-adapt", action="store_true",
                    help="measure an existing OUT/camera again")
    args = ap.parse_args(argv)
    if args.kernel:
        TRUE_KERNEL = tuple(float(v) for v in args.kernel.split(","))
    NOISE, JPEG = args.noise, args.jpeg
    torch.set_num_threads(1)
    from facesr.adapt.camera import PROFILE_DEFAULTS
    from facesr.degrade.jpeg import quantize8
    from facesr.degrade.kernelgan import centred_l2
    from facesr.degrade.kernels import bicubic_kernel, gaussian_kernel
    from facesr.degrade.pools import KernelPool
    from facesr.eval.inputs import shrink
    from facesr.eval.scoring import MetricSet
    from facesr.io import read_image, write_image
    from facesr.models.zoo import load

    data = SHARED / "data" / "faces_hq"
    if not data.is_dir():
        raise SystemExit(f"needs {data} (../shared/data beside the checkout)")
    out = args.out
    foot = out / "footage"
    foot.mkdir(parents=True, exist_ok=True)
    celeb = sorted((data / "celebahq").glob("*.jpg"))
    for i in range(FRAMES):
        p = foot / f"frame{i:02d}.png"
        if not p.exists():
            lr = camera(scene(100 + i, celeb), seed=100 + i)
            write_image(p, lr.permute(1, 2, 0).numpy())
    cam = out / "camera"
    t = time.perf_counter()
    if not args.skip_adapt:
        cmd = [sys.executable, "-m", "facesr", "adapt", str(foot), "--out", str(cam),
               "--minutes", str(args.minutes), "--threads", "1",
               "--weights", str(SHARED / "weights"), "--base", args.base]
        if args.iters:
            cmd += ["--iters", str(args.iters)]
        if args.iterations:
            cmd += ["--iterations", str(args.iterations)]
        cmd += ["--kernel-prior", args.kernel_prior]
        if args.kernel_stills:
            cmd += ["--kernel-stills", str(args.kernel_stills)]
        if args.distill:
            cmd += ["--distill"]
        if args.precision:
            cmd += ["--precision", args.precision]
        if args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        if args.kernel_angle:
            cmd += ["--kernel-angle", args.kernel_angle]
        if args.lr:
            cmd += ["--lr", str(args.lr)]
        for h in args.hq or []:
            cmd += ["--hq", str(h)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    adapt_s = time.perf_counter() - t

    true = gaussian_kernel(25, TRUE_KERNEL[0], TRUE_KERNEL[1], math.radians(TRUE_KERNEL[2]))
    camera_json = json.loads((cam / "camera.json").read_text())
    edges = camera_json["steps"].get("edges") or {}
    kernelgan_l2 = [centred_l2(k, true) for k in
                    KernelPool.load(cam / "kernels.safetensors").kernels]
    # the pool training used: KernelGAN's, or the edge check's turned one
    pool = KernelPool.load(cam / (edges.get("file") or "kernels.safetensors"))
    l2 = [centred_l2(k, true) for k in pool.kernels]
    l2_bic = centred_l2(bicubic_kernel(4, 25), true)
    l2_mean_kernel = centred_l2(pool.kernels.mean(0), true)

    metrics = MetricSet.load(["psnr", "lpips"], weights_dir=SHARED / "weights")
    models = {"facesr-default": load("facesr-default")[0]}
    if args.base != "facesr-default":
        models[args.base] = load(args.base)[0]
    if args.distill:
        models["teacher"] = load(cam / "teacher.safetensors")[0]
    models["adapted"] = load(cam)[0]
    import facesr

    test = sorted((data / "alae512").glob("*.png"))[:args.faces]
    rows = []
    for i, f in enumerate(test):
        hr = quantize8(shrink(read_image(f), 128))
        lr = camera(hr, seed=10_000 + i)
        outs = {"bicubic": F.interpolate(lr[None], size=hr.shape[-2:], mode="bicubic",
                                         align_corners=False)[0].clamp(0, 1)}
        for name, net in models.items():
            outs[name] = facesr.upscale_face(lr, model=net).float()
        rows.append({name: metrics.score(img, hr)[0] for name, img in outs.items()})
    table = {name: {m: ci([r[name][m] for r in rows]) for m in ("psnr", "lpips")}
             for name in rows[0]}
    # adapted against each other model (facesr-default, the base, the teacher) and bicubic
    pairs = [("adapted", b) for b in (*(m for m in models if m != "adapted"), "bicubic")]
    if args.distill:
        pairs.append(("teacher", "facesr-default"))
    paired = {f"{a} - {b}": {m: ci([r[a][m] - r[b][m] for r in rows])
                             for m in ("psnr", "lpips")} for a, b in pairs}
    train = camera_json["steps"]["train"]
    res = {"base": args.base, "distill": args.distill, "seed": camera_json["profile"]["seed"],
           "hq": [str(h) for h in args.hq or []],
           "kernel_prior": camera_json["profile"].get("kernel_prior", "default"),
           "kernel_iters": camera_json["profile"]["iters"],
           "true_kernel": TRUE_KERNEL,
           "noise": NOISE, "jpeg": JPEG,
           "compression": camera_json["steps"].get("compression", {}).get("quality"),
           "frames": FRAMES,
           "kernels": {"l2": l2, "l2_mean": float(np.mean(l2)), "l2_of_mean_kernel":
                       l2_mean_kernel, "l2_bicubic": l2_bic, "l2_kernelgan": kernelgan_l2,
                       "kernel_angle": camera_json["profile"].get("kernel_angle", "kernelgan"),
                       "edges": {k: edges.get(k) for k in ("reading", "firm", "why", "kernels")}},
           "adapt": {"seconds": adapt_s, "train_seconds": train["seconds"],
                     "iterations": train["iteration"],
                     "distill": camera_json["steps"].get("distill"),
                     "kernel_seconds": camera_json["steps"]["kernels"]["seconds"],
                     "kernel_jobs": camera_json["steps"]["kernels"].get("jobs"),
                     "precision": train.get("precision", ["fp32"]),
                     "lr": camera_json["profile"].get("lr", PROFILE_DEFAULTS["lr"])},
           "faces": len(rows), "methods": table, "paired": paired}
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(f"\n(a) kernels: {len(l2)} estimates, centred L2 to the true kernel: mean "
          f"{np.mean(l2):.4f} (min {min(l2):.4f}, max {max(l2):.4f}); their mean kernel "
          f"{l2_mean_kernel:.4f}; bicubic kernel {l2_bic:.4f}")
    if edges:
        print(f"    edge check: {edges['why']}; KernelGAN's own kernels: L2 "
              + ", ".join(f"{v:.4f}" for v in kernelgan_l2) + "; turned by "
              + ", ".join(f"{k['turn']:+.1f}" for k in edges["kernels"]) + " degrees")
    print(f"\n(b) {len(rows)} held-out faces at 128 px through the simulated camera; adapt took "
          f"{adapt_s / 60:.1f} min wall ({train['seconds'] / 60:.1f} min training, "
          f"{train['iteration']} iterations, 1 thread, "
          f"{' and '.join(res['adapt']['precision'])}; kernels "
          f"{res['adapt']['kernel_seconds'] / 60:.1f} min, {res['adapt']['kernel_jobs']} "
          "parallel run(s))" + (
              f"; distillation {res['adapt']['distill']['seconds'] / 60:.1f} min, "
              f"{res['adapt']['distill']['iteration']} iterations" if args.distill else "")
          + "\n")
    print("| method | PSNR-Y (dB) | LPIPS |\n|---|---|---|")
    for name, s in table.items():
        print(f"| {name} | {s['psnr']['mean']:.2f} [{s['psnr']['low']:.2f}, "
              f"{s['psnr']['high']:.2f}] | {s['lpips']['mean']:.3f} [{s['lpips']['low']:.3f}, "
              f"{s['lpips']['high']:.3f}] |")
    for k, s in paired.items():
        print(f"| {k} (paired) | {s['psnr']['mean']:+.2f} [{s['psnr']['low']:+.2f}, "
              f"{s['psnr']['high']:+.2f}] | {s['lpips']['mean']:+.3f} "
              f"[{s['lpips']['low']:+.3f}, {s['lpips']['high']:+.3f}] |")
    print("\nper face (PSNR-Y difference): worst, best, faces above zero")
    for k, s in paired.items():
        print(f"- {k}: {s['psnr']['min']:+.2f}, {s['psnr']['max']:+.2f}, "
              f"{s['psnr']['above_zero']}/{s['psnr']['n']}")


if __name__ == "__main__":
    main()
