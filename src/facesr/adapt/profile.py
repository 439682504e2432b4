"""A camera's degradation profile: its blur kernels and its noise, from sampled stills.

Kernels: KernelGAN (``facesr.degrade.kernelgan``) on each kernel still of
``footage.sample``, several at a time in parallel processes when cores allow. The pool file is
rewritten after every finished batch, so an interrupted ``facesr adapt`` loses at most the
estimates in progress and a re-run skips the stills already in the pool.

Noise: the method's smooth-patch criteria (equations 4-6, ``facesr.degrade.noise``) with its
own thresholds first. Compressed surveillance footage often leaves almost no patch that passes
them (codecs flatten the inside of 8x8 blocks, so sub-window variances differ from the patch's
by more than ``gamma``), so when fewer than ``MIN_NOISE`` patches are found the thresholds are
relaxed step by step (``RELAX``: first ``gamma``, the variance tolerance, then ``mu``) and the
first step that finds enough is used. Every step tried, its count and why it was (not) used go
into the pool's settings and the report.

Looser thresholds let image structure in (an edge or a shading is not noise: a pool of them
teaches the model to wipe texture away; measured on ``benchmarks/adapt.py``'s camera, noise 5
levels: the patches of ``mu 0.3, gamma 1.0`` had a std of 20 levels and the adapted model lost
1 dB to facesr-default). So a relaxed step keeps a patch only when at most ``LOWFREQ_MAX`` of
its luma variance survives a Gaussian blur of ``LOWFREQ_SIGMA`` px: noise, even a codec's
blocky noise, lives in the high frequencies, structure in the low ones (white noise keeps
about 2%, an edge or a gradient most of it). An absolute bound from the still's noise level
(Immerkaer's estimator on its flattest blocks) does not work on compressed footage: the
codec makes flat blocks exactly flat (0.0-0.3 levels on the shared clips). The method's own
thresholds are used as they are.

Compression: a camera that stores JPEG stills leaves its quality in every one: in a JPEG
file's own quantisation table, and in decoded stills (PNG exports of them) as 8x8 DCT
coefficients on the multiples of that table (``facesr.degrade.jpeg``; libjpeg's tables). When
at least ``JPEG_MIN_SHARE`` of the stills show it, training compresses at the qualities found
(their range, with the share of stills that showed it as the probability) instead of the
method's JPEG 30; otherwise (a video codec, resized frames, near-lossless JPEG, another
encoder's tables) at the method's.

Edge check (:func:`edge_check`): the blur's direction read from the step edges of every
sampled still (``facesr.degrade.edges``) beside each KernelGAN kernel's. KernelGAN's direction
varies from seed to seed on thin blur (``benchmarks/adapt.py``'s camera, true 60 degrees:
estimates at 60-84 degrees); the edges of that camera's 8 stills read 57-62. The reading is
*firm* when at least ``EDGE_MIN_STILLS`` stills give one, they agree within
``EDGE_MAX_SPREAD`` degrees (circular spread) and the edges are clearly anisotropic (median
anisotropy at least ``EDGE_MIN_ANISOTROPY``; a round blur's direction means nothing). With
``--kernel-angle edges`` each elongated kernel (major/minor at least ``KERNEL_MIN_ELONGATION``)
is turned to a firm reading when they differ by ``TURN_MIN`` degrees or more
(``kernels-turned.safetensors``, which training then uses); by default the reading is only
reported. It needs real step edges (buildings, signs, the rims of objects): the edges of
textured scenes (fur, foliage, fabric) give the texture's direction, and every still of a
static camera shows the same scene, so stills agreeing does not rule that out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from facesr.adapt.footage import Still
from facesr.degrade import edges, kernelgan
from facesr.degrade.jpeg import estimate_quality, file_quality
from facesr.degrade.kernels import principal_widths, rotate_kernel
from facesr.degrade.noise import LUMA, extract_noise_patches
from facesr.degrade.pools import KernelPool, NoisePool, PoolError

log = logging.getLogger(__name__)
LUMA_W = [float(v) for v in LUMA]

# (mu, gamma): the method's thresholds, then looser variance and mean tolerances
# (no looser: at mu 0.3 / gamma 2.0 and beyond, sharp edges of a scene pass for noise: on
# benchmarks/adapt.py's footage a pool of 20-level "noise" where the camera's is 2)
RELAX: tuple[tuple[float, float], ...] = (
    (0.1, 0.25), (0.1, 0.5), (0.2, 0.5), (0.2, 1.0), (0.3, 1.0))
PHI = 0.5  # minimum patch variance (eq. 6), 0-255 scale: never relaxed (rejects clipping)
MIN_NOISE = 32  # patches wanted before the relaxation stops
MAX_PER_STILL = 64  # at most this many patches from one still (seeded choice)
LOWFREQ_MAX, LOWFREQ_SIGMA = 0.5, 2.0  # relaxed steps: share of variance left after a blur
JPEG_MIN_SHARE = 0.5  # stills that must show a JPEG quality for training to use it
JPEG_STILLS = 12  # stills (spread over the sampled ones) the quality is read from
EDGE_MIN_STILLS = 3  # edge check (module docs): stills with a reading, at least
EDGE_MAX_SPREAD = 10.0  # their circular spread (degrees), at most
EDGE_MIN_ANISOTROPY = 0.2  # median anisotropy, at least (camera A 0.35; the PETS clip 0.08)
KERNEL_MIN_ELONGATION = 1.5  # a kernel's major / minor width for its direction to count
TURN_MIN = 5.0  # smaller differences (degrees) are left alone
KERNEL_ANGLES = ("kernelgan", "edges")  # facesr adapt --kernel-angle
TURNED_FILE = "kernels-turned.safetensors"


def kernel_settings(iters: int, seed: int, prior: str = "default") -> dict:
    """The settings of an adapt kernel pool: ``kernelgan.pool_settings``, as ``facesr pool
    kernels`` records them."""
    return kernelgan.pool_settings(iters, seed, prior)


def estimate_kernels(stills: Sequence[Still], pool_path: Path, *, iters: int, seed: int,
                     jobs: int = 1, progress: Callable[[int, int], None] | None = None,
                     prior: str = "default") -> KernelPool:
    """Estimate one kernel per still into ``pool_path`` (resumed when it exists), with
    ``kernelgan.PRESETS[prior]``'s settings (``iters`` given here).

    Raises:
        PoolError: an existing pool made with other settings, or unreadable.
    """
    settings = kernel_settings(iters, seed, prior)
    options = kernelgan.preset(prior)[1]
    kernels: list[torch.Tensor] = []
    sources: list[dict] = []
    if pool_path.exists():
        pool = KernelPool.load(pool_path)
        if pool.settings != settings:
            raise PoolError(f"{pool_path}: made with other settings ({pool.settings}); "
                            f"this run uses {settings}: delete it or use another --out")
        kernels, sources = list(pool.kernels), list(pool.sources)
    done = {(s["source"], s.get("frame")) for s in sources}
    todo = [s for s in stills if (str(s.path), s.frame) not in done]
    total = len(stills)
    if progress is not None:
        progress(total - len(todo), total)
    step = max(1, jobs)
    for i in range(0, len(todo), step):
        chunk = todo[i:i + step]
        images = [torch.from_numpy(s.image).permute(2, 0, 1).float().contiguous()
                  for s in chunk]
        for s, est in zip(chunk, _estimate(images, iters, seed, jobs, options), strict=True):
            kernels.append(est.kernel)
            sources.append({"source": str(s.path), "frame": s.frame, **settings,
                            "recipe": kernelgan.RECIPES[0]})
        KernelPool(torch.stack(kernels), sources, 4, settings).save(pool_path)
        if progress is not None:
            progress(total - len(todo) + i + len(chunk), total)
    if not kernels:
        raise PoolError("no still to estimate a kernel from")
    return KernelPool(torch.stack(kernels), sources, 4, settings)


def edge_check(stills: Sequence[Still], pool: KernelPool, *, turn: bool
               ) -> tuple[KernelPool | None, dict]:
    """The blur direction of ``stills``' step edges against ``pool``'s kernels (module docs).

    Returns:
        (the pool with its elongated kernels turned to a firm reading, or None when ``turn`` is
        False, the reading is not firm or no kernel needed turning; the record: each still's
        reading, the combined one, whether it is firm and why, each kernel's angle, elongation,
        difference and turn).
    """
    per, readings = [], []
    for s in stills:
        r = edges.edge_blur(s.image)
        per.append({"still": s.key, **(r.record() if r is not None else
                                       {"angle": None, "why": f"fewer than {edges.MIN_EDGES} "
                                                               "clean step edges"})})
        if r is not None:
            readings.append(r)
    both = edges.combine(readings)
    if both is None or both["stills"] < EDGE_MIN_STILLS:
        firm, why = False, (f"{0 if both is None else both['stills']} stills with a reading, "
                            f"fewer than {EDGE_MIN_STILLS}")
    elif both["anisotropy"] < EDGE_MIN_ANISOTROPY:
        firm, why = False, (f"the edges are nearly round (anisotropy {both['anisotropy']}, "
                            f"under {EDGE_MIN_ANISOTROPY:g}): no direction to read")
    elif both["spread"] > EDGE_MAX_SPREAD:
        firm, why = False, (f"the stills disagree (spread {both['spread']} degrees, more than "
                            f"{EDGE_MAX_SPREAD:g})")
    else:
        firm, why = True, (f"{both['stills']} stills agree on {both['angle']:.0f} degrees "
                           f"(spread {both['spread']}, anisotropy {both['anisotropy']})")
    rows, kernels, sources = [], [], []
    for k, src in zip(pool.kernels, pool.sources, strict=True):
        major, minor, angle = principal_widths(k)
        row = {"source": src.get("source"), "frame": src.get("frame"), "angle": round(angle, 1),
               "elongation": round(major / max(minor, 1e-6), 2), "turn": 0.0}
        if firm:
            row["difference"] = round(edges.angle_difference(both["angle"], angle), 1)
            if turn and row["elongation"] >= KERNEL_MIN_ELONGATION and \
                    abs(row["difference"]) >= TURN_MIN:
                row["turn"] = row["difference"]
        rows.append(row)
        kernels.append(rotate_kernel(k, row["turn"]) if row["turn"] else k)
        sources.append({**src, "turned": row["turn"]})
    turned = any(r["turn"] for r in rows)
    rec = {"stills": per, "reading": both, "firm": firm, "why": why, "turn": turn,
           "kernels": rows, "file": TURNED_FILE if turned else None}
    if not turned:
        return None, rec
    settings = {**pool.settings, "turned_to_edges": both["angle"]}
    return KernelPool(torch.stack(kernels), sources, pool.scale, settings), rec


def _estimate(images: list[torch.Tensor], iters: int, seed: int, jobs: int,
              options: dict | None = None) -> list:
    """One estimate per image, ``jobs`` in parallel processes (1: in this one)."""
    return kernelgan.estimate_kernels(images, jobs=min(jobs, len(images)), iters=iters,
                                      seed=seed, options=options)


def noise_pool(stills: Sequence[Still], *, seed: int = 0, patch: int = 32,
               min_patches: int = MIN_NOISE) -> tuple[NoisePool | None, list[dict]]:
    """The noise pool from ``stills``, relaxing the thresholds until ``min_patches`` are found.

    Returns:
        ``(pool or None when no step found any patch, the steps tried)``; each step is
        ``{"mu", "gamma", "phi", "patches", "stills_with_patches", "used", "why"}``.
    """
    steps: list[dict] = []
    best: tuple[list, list] | None = None
    for step_no, (mu, gamma) in enumerate(RELAX):
        found, records = [], []
        rng = np.random.default_rng(seed)
        dropped = 0
        for s in stills:
            p, _ = extract_noise_patches(s.image, patch=patch, mu=mu, gamma=gamma, phi=PHI)
            if step_no > 0 and len(p):  # relaxed: keep noise, not structure
                ok = lowfreq_share(p) <= LOWFREQ_MAX
                dropped += int((~ok).sum())
                p = p[ok]
            n = len(p)
            if n > MAX_PER_STILL:
                p = p[torch.from_numpy(np.sort(rng.choice(n, MAX_PER_STILL, replace=False)))]
            records.append({"source": str(s.path), "frame": s.frame, "found": n,
                            "kept": len(p)})
            found.append(p)
        count = sum(len(p) for p in found)
        step = {"mu": mu, "gamma": gamma, "phi": PHI, "patches": count,
                "stills_with_patches": sum(1 for p in found if len(p)),
                "dropped_as_structure": dropped}
        steps.append(step)
        if count:
            best = (found, records)
        if count >= min_patches:
            break
    used = len(steps) - 1
    for i, step in enumerate(steps):
        step["used"] = i == used and best is not None
        if step["used"]:
            step["why"] = ("the method's thresholds" if i == 0 else
                           f"the first step with at least {min_patches} patches"
                           if step["patches"] >= min_patches else
                           f"the loosest step; only {step['patches']} patches (fewer than "
                           f"{min_patches}): add footage")
        else:
            step["why"] = (f"{step['patches']} patches, fewer than {min_patches}"
                           if i < used else "not tried")
    if best is None:
        return None, steps
    found, records = best
    index = [i for i, p in enumerate(found) for _ in range(len(p))]
    chosen = steps[used]
    settings = {"patch": patch, "sub": 8, "stride": 16, "sub_stride": 8, "mu": chosen["mu"],
                "gamma": chosen["gamma"], "phi": PHI, "stats": "luma",
                "max_per_source": MAX_PER_STILL, "seed": seed, "relaxation": steps}
    pool = NoisePool(torch.cat([p for p in found if len(p)]),
                     torch.tensor(index, dtype=torch.int64), records, settings)
    return pool, steps


def lowfreq_share(patches: torch.Tensor) -> torch.Tensor:
    """Per patch, the share of its luma variance left after a Gaussian blur of
    ``LOWFREQ_SIGMA`` px (reflected borders): ~0.02 for white noise, near 1 for an edge or a
    gradient. Shape: (M, 3, P, P) -> (M,)."""
    import torch.nn.functional as F

    lum = (patches * torch.tensor(LUMA_W).view(1, 3, 1, 1)).sum(1, keepdim=True)
    lum = lum - lum.mean(dim=(2, 3), keepdim=True)
    r = int(3 * LOWFREQ_SIGMA)
    x = torch.arange(-r, r + 1, dtype=lum.dtype)
    g = torch.exp(-x**2 / (2 * LOWFREQ_SIGMA**2))
    g = g / g.sum()
    low = F.conv2d(F.pad(lum, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    low = F.conv2d(F.pad(low, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))
    total = lum.pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return low.pow(2).mean(dim=(1, 2, 3)) / total


def compression(stills: Sequence[Still]) -> dict:
    """The camera's JPEG quality, read from up to ``JPEG_STILLS`` of ``stills`` (spread
    evenly): a JPEG file's own table, else the decoded pixels' DCT grid.

    Returns:
        ``{"quality": [low, high] or None, "prob": share of the stills that showed one or
        None, "stills": [{"still", "quality", "method", "fit", "grid"}], "why"}``; ``quality``
        is None when fewer than ``JPEG_MIN_SHARE`` of the stills show one.
    """
    if len(stills) > JPEG_STILLS:
        stills = [stills[round(i * (len(stills) - 1) / (JPEG_STILLS - 1))]
                  for i in range(JPEG_STILLS)]
    per = []
    for s in stills:
        e = file_quality(s.path) if s.frame is None else None
        e = e or estimate_quality(s.image)
        per.append({"still": s.key, **(e.record() if e else {"quality": None})})
    qs = sorted(r["quality"] for r in per if r["quality"] is not None)
    if not qs or len(qs) < JPEG_MIN_SHARE * len(per):
        return {"quality": None, "prob": None, "stills": per,
                "why": f"{len(qs)} of {len(per)} stills show a JPEG quality (a video codec, "
                       "resized frames, near-lossless JPEG or another encoder's tables): "
                       "training uses the method's JPEG 30"}
    lo, hi = qs[len(qs) // 10], qs[len(qs) - 1 - len(qs) // 10]  # a stray still left out
    prob = round(len(qs) / len(per), 3)
    return {"quality": [lo, hi], "prob": prob, "stills": per,
            "why": f"{len(qs)} of {len(per)} stills show JPEG quality "
                   + (f"{lo}" if lo == hi else f"{lo}-{hi}")
                   + f": training compresses at it (probability {prob})"}
