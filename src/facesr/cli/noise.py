"""``facesr pool noise``: zero-mean noise patches from smooth regions of source footage.

``--limit N`` uses only the first N stills in input order (an image is one still, a video one
per --frame-stride frames; unreadable files count too); ``--threads N`` sets the CPU threads
of torch and OpenCV (video decoding). An existing --out is refused without --overwrite (the
command does not resume: it is fast enough to run again).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from facesr.cli._common import BatchReport, count_stills, err, out, progress, set_threads
from facesr.degrade.noise import extract_noise_patches
from facesr.degrade.pools import NoisePool
from facesr.io import InputError, expand_inputs, iter_sources

MIN_POOL = 16  # fewer noise patches than this: warned about


def noise(
    sources: Annotated[list[Path], typer.Argument(help="Images, folders and videos of the "
                                                       "source camera (real LR footage).")],
    out_path: Annotated[Path, typer.Option("--out", help="Pool file to write (.safetensors).")],
    patch: Annotated[int, typer.Option(help="Patch side p (the LR training patch size).")] = 32,
    sub: Annotated[int, typer.Option(help="Sub-window side q.")] = 8,
    stride: Annotated[int, typer.Option(help="Stride of the patch window.")] = 16,
    sub_stride: Annotated[int, typer.Option(help="Stride of the sub-window inside a patch.")] = 8,
    mu: Annotated[float, typer.Option(help="Mean tolerance (eq. 4).")] = 0.1,
    gamma: Annotated[float, typer.Option(help="Variance tolerance (eq. 5).")] = 0.25,
    phi: Annotated[float, typer.Option(help="Minimum variance, 0-255 scale (eq. 6).")] = 0.5,
    stats: Annotated[str, typer.Option(help="Test the criteria on the luminance ('luma') "
                                            "or on each colour channel ('rgb').")] = "luma",
    frame_stride: Annotated[int, typer.Option(help="Use every Nth video frame.")] = 10,
    max_frames: Annotated[int | None, typer.Option(help="At most N frames per video.")] = None,
    max_per_source: Annotated[int, typer.Option(
        help="Keep at most N patches per still (random, seeded), so no frame dominates.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed for the per-still subsampling.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing pool file.")] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N stills in input order.", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads for torch and OpenCV (default: all).", show_default=False)]
    = None,
) -> None:
    """Collect zero-mean noise patches from smooth regions of source images (eqs. 4-6)."""
    if out_path.exists() and not overwrite:
        err.print(f"{out_path} exists; pass --overwrite to replace it")
        raise typer.Exit(2)
    if stats not in ("luma", "rgb"):
        raise typer.BadParameter("must be 'luma' or 'rgb'", param_hint="--stats")
    if max_per_source < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--max-per-source")
    try:
        files = expand_inputs(sources)
    except InputError as e:
        err.print(str(e))
        raise typer.Exit(2) from None
    set_threads(threads)
    total = count_stills(files, frame_stride, max_frames)
    cut = ""
    if limit is not None and limit < total:
        cut = f"; used the first {limit} of {total} stills (--limit)"
        total = limit
    rng = np.random.default_rng(seed)
    report = BatchReport()
    patches: list[torch.Tensor] = []
    index: list[int] = []
    records: list[dict] = []
    with progress() as bar:
        task = bar.add_task("noise patches", total=total, note="")
        stills = iter_sources(files, frame_stride=frame_stride, max_frames=max_frames)
        for item in itertools.islice(stills, limit):
            bar.advance(task)
            if item.error is not None:
                report.fail(item.path, str(item.error))
                continue
            p, _ = extract_noise_patches(item.image, patch=patch, sub=sub, stride=stride,
                                         sub_stride=sub_stride, mu=mu, gamma=gamma, phi=phi,
                                         stats=stats)
            found = len(p)
            if found > max_per_source:
                p = p[torch.from_numpy(np.sort(rng.choice(found, max_per_source, replace=False)))]
            if len(p):
                index.extend([len(records)] * len(p))
                patches.append(p)
            records.append({"source": str(item.path), "frame": item.frame, "found": found,
                            "kept": len(p)})
            report.done += 1
            bar.update(task, note=f"{sum(len(x) for x in patches)} patches")
    if not patches:
        err.print(f"no smooth patch found in any source with --mu {mu} --gamma {gamma} --phi "
                  f"{phi}: nothing written. Compressed footage flattens the inside of 8x8 "
                  f"blocks; try --gamma {max(0.5, 2 * gamma):g} (then --mu {max(0.2, 2 * mu):g}), "
                  "or more or larger footage")
        raise typer.Exit(1)
    settings = {"patch": patch, "sub": sub, "stride": stride, "sub_stride": sub_stride,
                "mu": mu, "gamma": gamma, "phi": phi, "stats": stats, "frame_stride": frame_stride,
                "max_frames": max_frames, "max_per_source": max_per_source, "seed": seed,
                "limit": limit}
    pool = NoisePool(torch.cat(patches), torch.tensor(index, dtype=torch.int64), records, settings)
    pool.save(out_path)
    std = float(pool.patches.std()) * 255.0
    per = pool.patches.std(dim=(0, 2, 3)) * 255.0
    mean = pool.patches.mean(dim=(0, 2, 3)) * 255.0
    out.print(f"wrote {out_path}: {len(pool)} noise patches from "
              f"{sum(1 for r in records if r['kept'])} of {len(records)} stills "
              f"(noise std {std:.2f} on the 0-255 scale; R/G/B std "
              f"{per[0]:.2f}/{per[1]:.2f}/{per[2]:.2f}, mean {mean[0]:+.3f}/{mean[1]:+.3f}/"
              f"{mean[2]:+.3f}){cut}")
    if len(pool) < MIN_POOL:
        err.print(f"warning: only {len(pool)} noise patches (fewer than {MIN_POOL}): training "
                  f"would see the same few noise fields again and again; add footage or loosen "
                  f"--gamma (now {gamma}) / --mu (now {mu})")
    report.finish("stills")
