"""How well KernelGAN recovers known blur kernels, against a bicubic-kernel baseline.

    python benchmarks/kernel_estimation.py                      # 4 natural images, 4 kernels
    python benchmarks/kernel_estimation.py --images 2 --iters 1500 --faces 2 --jobs 2
    # settings side by side (ITERS:RECIPE, see kernelgan.RECIPES), each case under each:
    OMP_NUM_THREADS=1 python benchmarks/kernel_estimation.py --images 2 --jobs 1 \
        --compare 3000:legacy,3000:fast,2000:fast:b2   # b2: 2 crops per iteration
    # kernelgan.PRESETS (facesr adapt --kernel-prior) by name:
    python benchmarks/kernel_estimation.py --compare default,thin

Protocol: a clean image is blurred with a known anisotropic Gaussian x4 kernel and subsampled
x4 (``blur_downsample``); KernelGAN sees only that LR image. Two errors per estimate:

- kernel L2: Euclidean distance between the estimated and the true 25x25 kernel after both are
  normalised (sum 1, centred);
- re-degradation PSNR: the clean image degraded with the estimate vs the true LR image (dB,
  higher is better).

Times: CPU seconds of the worker process per estimate (``time.process_time``: steadier than
wall time on a shared machine) and wall seconds; each worker first runs a tiny warm-up estimate
(torch's one-off lazy imports, ~2-3 s) outside the timings.

The baseline is the antialiased bicubic x4 kernel (what a plain x4 downscale assumes). Natural
images are scikit-image's bundled photographs and a dead-leaves image (scale-invariant by
construction: KernelGAN's premise holds exactly); ``--faces N`` adds N faces from ``--hq``.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from facesr.degrade import kernelgan
from facesr.degrade.kernels import bicubic_kernel, blur_downsample, gaussian_kernel

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
NATURAL = ("astronaut", "coffee", "rocket", "chelsea")
# (sigma_major, sigma_minor, angle in degrees), HR pixels
KERNELS = ((3.5, 1.0, 45.0), (4.0, 2.0, 57.0), (2.5, 1.5, 120.0), (1.5, 1.2, 17.0))


def dead_leaves(size: int = 512, seed: int = 0) -> torch.Tensor:
    """Overlapping discs of random grey with radius density ~ 1/r^3: a scale-invariant image."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 0.5, np.float32)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(1500):
        r = size / 6 * (1 - rng.random()) ** 2 + 2
        cy, cx = rng.uniform(0, size, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random()
    return torch.from_numpy(img).expand(3, -1, -1).contiguous()


def load(name: str) -> torch.Tensor:
    """An HR image (3, H, W) with H, W divisible by 4: a skimage name, 'dead_leaves' or a path."""
    if name == "dead_leaves":
        return dead_leaves()
    if Path(name).is_file():
        from facesr.io import read_image

        img = read_image(name)
    else:
        import skimage.data

        a = getattr(skimage.data, name)()
        img = torch.from_numpy(a[..., :3].astype(np.float32) / 255).permute(2, 0, 1)
    h, w = img.shape[1] // 4 * 4, img.shape[2] // 4 * 4
    return img[:, :h, :w].contiguous()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(max(float(((a - b) ** 2).mean()), 1e-12))


def _warm_up() -> None:
    """Pool initializer: one thread, and torch's one-off lazy imports out of the timings."""
    torch.set_num_threads(1)
    kernelgan.estimate_kernel(torch.rand(3, 40, 40), iters=2)


def one(job: tuple[str, tuple[float, float, float], int, str, int, int, str]) -> dict:
    """Estimate one (image, kernel) case under one setting; returns its errors and times."""
    name, (sx, sy, deg), iters, recipe, seed, batch, preset = job
    options = kernelgan.preset(preset)[1]
    torch.set_num_threads(1)
    hr = load(name)
    true = gaussian_kernel(kernelgan.X4_SIZE, sx, sy, math.radians(deg))
    lr = blur_downsample(hr, true, 4)
    t, cpu = time.perf_counter(), time.process_time()
    est = kernelgan.estimate_kernel(lr, iters=iters, seed=seed, recipe=recipe,
                                    batch=batch, **options).kernel
    cpu, secs = time.process_time() - cpu, time.perf_counter() - t
    bic = bicubic_kernel(4, kernelgan.X4_SIZE)
    return {
        "image": Path(name).name, "kernel": f"{sx}/{sy}/{deg:.0f}",
        "setting": _label(iters, recipe, batch, preset),
        "secs": secs, "cpu": cpu,
        "l2_est": kernelgan.centred_l2(est, true), "l2_bic": kernelgan.centred_l2(bic, true),
        "psnr_est": _psnr(blur_downsample(hr, est, 4), lr),
        "psnr_bic": _psnr(blur_downsample(hr, bic, 4), lr),
    }


def table(rows: list[dict], title: str) -> None:
    """Print one Markdown table with a mean row and win counts."""
    print(f"\n{title}\n")
    print("| image | true kernel (sigma/sigma/deg) | L2 KernelGAN | L2 bicubic "
          "| PSNR KernelGAN | PSNR bicubic |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['image']} | {r['kernel']} | {r['l2_est']:.4f} | {r['l2_bic']:.4f} "
              f"| {r['psnr_est']:.2f} | {r['psnr_bic']:.2f} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("l2_est", "l2_bic", "psnr_est", "psnr_bic")}
    wins_l2 = sum(r["l2_est"] < r["l2_bic"] for r in rows)
    wins_psnr = sum(r["psnr_est"] > r["psnr_bic"] for r in rows)
    print(f"| **mean** ({len(rows)} cases) | | **{mean['l2_est']:.4f}** | {mean['l2_bic']:.4f} "
          f"| **{mean['psnr_est']:.2f}** | {mean['psnr_bic']:.2f} |")
    print(f"\nKernelGAN beats bicubic in {wins_l2}/{len(rows)} cases on kernel L2 "
          f"(mean ratio {mean['l2_est'] / mean['l2_bic']:.2f}) and in {wins_psnr}/{len(rows)} "
          f"on re-degradation PSNR (mean {mean['psnr_est'] - mean['psnr_bic']:+.2f} dB).")


def _label(iters: int, recipe: str, batch: int, preset: str = "default") -> str:
    if preset != "default":
        return preset + ("" if iters == kernelgan.preset(preset)[0] else f":{iters}")
    return f"{iters}:{recipe}" + (f":b{batch}" if batch != kernelgan.BATCH else "")


def _settings(text: str) -> list[tuple[int, str, int, str]]:
    """'3000:legacy,2000:fast:b2,thin' -> [(3000, 'legacy', 1, 'default'),
    (2000, 'fast', 2, 'default'), (6000, 'fast', 1, 'thin')] (recipe default 'fast', crops
    per iteration default kernelgan.BATCH; a kernelgan.PRESETS name, optionally ':ITERS')."""
    out = []
    for item in text.split(","):
        head, _, rest = item.strip().partition(":")  # PRESET[:ITERS] or ITERS:RECIPE...
        if head in kernelgan.PRESETS:
            its = rest or str(kernelgan.preset(head)[0])
            if not its.isdigit() or int(its) < 1:
                raise argparse.ArgumentTypeError(f"bad setting {item!r}: want PRESET[:ITERS]")
            out.append((int(its), "fast", kernelgan.BATCH, head))
            continue
        iters = head
        recipe, _, batch = rest.partition(":")
        recipe = recipe or "fast"
        batch = batch[1:] if batch.startswith("b") else (batch or str(kernelgan.BATCH))
        if (not iters.isdigit() or int(iters) < 1 or recipe not in kernelgan.RECIPES
                or not batch.isdigit() or int(batch) < 1):
            raise argparse.ArgumentTypeError(
                f"bad setting {item!r}: want ITERS:RECIPE[:bBATCH], RECIPE one of "
                f"{', '.join(kernelgan.RECIPES)}")
        out.append((int(iters), recipe, int(batch), "default"))
    return out


def summary(rows_by: dict[str, list[dict]]) -> None:
    """One line per setting (means, wins, times) and each setting against the first."""
    def mean(rows: list[dict], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    print("\n| setting | cases | mean L2 | mean PSNR | L2 wins vs bicubic | PSNR wins vs bicubic "
          "| CPU s / estimate | wall s / estimate |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in rows_by.items():
        n = len(rows)
        print(f"| {name} | {n} | {mean(rows, 'l2_est'):.4f} | {mean(rows, 'psnr_est'):.2f} dB "
              f"| {sum(r['l2_est'] < r['l2_bic'] for r in rows)}/{n} "
              f"| {sum(r['psnr_est'] > r['psnr_bic'] for r in rows)}/{n} "
              f"| {mean(rows, 'cpu'):.1f} | {mean(rows, 'secs'):.1f} |")
    first, *others = rows_by
    ref = rows_by[first]
    for name in others:
        rows = rows_by[name][:len(ref)]
        pairs = list(zip(rows, ref, strict=False))  # an unfinished run: the cases both have
        print(f"\n{name} vs {first}: CPU time x{mean(rows, 'cpu') / mean(ref, 'cpu'):.2f} "
              f"(wall x{mean(rows, 'secs') / mean(ref, 'secs'):.2f}); "
              f"mean L2 {mean(rows, 'l2_est') - mean(ref, 'l2_est'):+.4f}, "
              f"mean PSNR {mean(rows, 'psnr_est') - mean(ref, 'psnr_est'):+.2f} dB; "
              f"lower L2 in {sum(a['l2_est'] < b['l2_est'] for a, b in pairs)}/{len(pairs)} "
              f"cases, higher PSNR in {sum(a['psnr_est'] > b['psnr_est'] for a, b in pairs)}"
              f"/{len(pairs)}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4,
                    help=f"natural images to use, of {', '.join(NATURAL)}, plus dead leaves")
    ap.add_argument("--names", default=None, metavar="NAME,...",
                    help="these images instead of --images (skimage names, dead_leaves, paths)")
    ap.add_argument("--faces", type=int, default=0, help="also this many faces from --hq")
    ap.add_argument("--hq", type=Path, default=SHARED / "data" / "faces_hq" / "alae512")
    ap.add_argument("--iters", type=int, default=kernelgan.DEFAULT_ITERS,
                    help="KernelGAN iterations (one setting, the default recipe)")
    ap.add_argument("--compare", type=_settings, default=None, metavar="ITERS:RECIPE,...",
                    help="run these settings side by side instead of --iters, e.g. "
                         "3000:legacy,2000:fast (recipes: " + ", ".join(kernelgan.RECIPES)
                         + ") or preset names (" + ", ".join(kernelgan.PRESETS) + ")")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes (1 thread each)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    settings = args.compare or [(args.iters, "fast", kernelgan.BATCH, "default")]
    natural = args.names.split(",") if args.names else [*NATURAL[:args.images], "dead_leaves"]
    faces = [str(p) for p in sorted(args.hq.glob("*.png"))[:args.faces]]
    if args.faces and not faces:
        raise SystemExit(f"no faces in {args.hq} (needs ../shared/data)")
    # case by case, every setting of a case in a row: an interrupted run still pairs them
    jobs = [(n, k, it, recipe, args.seed, b, p) for n in natural + faces for k in KERNELS
            for it, recipe, b, p in settings]
    t = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(args.jobs, initializer=_warm_up) as pool:
        for r in pool.map(one, jobs):
            rows.append(r)
            if len(settings) > 1:
                print(f"{r['image']} {r['kernel']} {r['setting']}: L2 {r['l2_est']:.4f} "
                      f"(bicubic {r['l2_bic']:.4f}), PSNR {r['psnr_est']:.2f} dB "
                      f"({r['psnr_bic']:.2f}), {r['cpu']:.1f} s CPU, {r['secs']:.1f} s wall",
                      flush=True)
    wall = time.perf_counter() - t
    rows_by = {_label(*st): [r for r in rows if r["setting"] == _label(*st)]
               for st in settings}
    for it, recipe, batch, preset in dict.fromkeys(settings):
        srows = rows_by[_label(it, recipe, batch, preset)]
        nat = [r for r in srows if r["image"] in natural]
        what = f"{it} iterations, recipe {recipe}, seed {args.seed}" + (
            f", {batch} crops per iteration" if batch != kernelgan.BATCH else "") + (
            f", preset {preset}" if preset != "default" else "")
        table(nat, f"Kernel estimation, natural images ({what})")
        if faces:
            face_rows = [r for r in srows if r["image"] not in natural]
            table(face_rows, f"Kernel estimation, face crops from {args.hq.name} ({what}; tight "
                             "crops: not scale-invariant, see README)")
    summary(rows_by)
    print(f"\n{len(rows)} estimates in {wall:.0f} s wall ({args.jobs} processes, 1 thread each)")


if __name__ == "__main__":
    main()
