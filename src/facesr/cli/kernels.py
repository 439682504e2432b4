"""``facesr pool kernels``: one KernelGAN x4 blur kernel per source image or video frame.

The pool file is rewritten (atomically) after every finished kernel, so an interrupted run
loses at most the image in progress; running the same command again loads the file and skips
the sources already in it. A source is a file path plus, for videos, a frame index; it matches
when the path is spelled the same way (run from the same folder with the same arguments).

A resumed pool must be made the way it was begun: when the file's kernels were estimated with
other settings (``ESTIMATION_KEYS``: --iters, --seed, --kernel-prior, the estimator and its x2
kernel size; not --device or --threads, nor --stride, --max-frames or --limit, which only choose
the stills) the run refuses, naming each difference, unless ``--allow-mixed``. Every kernel's
source record carries its own settings; the pool's ``settings`` hold those all its kernels
share.

``--limit N`` uses only the first N stills in input order (an image is one still, a video one
per --stride frames), done or not, so a larger limit later extends a smaller one's pool.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

import torch
import typer

from facesr.cli._common import (
    BatchReport,
    count_stills,
    err,
    out,
    progress,
    set_threads,
    setup_logging,
)
from facesr.degrade import kernelgan
from facesr.degrade.pools import KernelPool, PoolError
from facesr.io import InputError, expand_inputs, iter_sources, still_key, to_tensor

# the settings that make a kernel what it is: compared when a run resumes a pool
# ("prior": absent from the records of the default setting, so older pools match it)
ESTIMATION_KEYS = ("estimator", "x2_size", "iters", "seed", "prior")
OPTION_NAMES = {"iters": "--iters", "seed": "--seed", "prior": "--kernel-prior"}
KernelPrior = Literal["default", "thin"]  # facesr.degrade.kernelgan.PRESETS


def kernels(
    sources: Annotated[list[Path], typer.Argument(
        help="Images, folders (searched recursively) and videos of the source camera.")],
    out_path: Annotated[Path, typer.Option(
        "--out", help="Kernel pool file (.safetensors); if it exists, the run resumes it.")],
    kernel_prior: Annotated[KernelPrior, typer.Option(
        help="KernelGAN setting, as facesr adapt's: default, or thin (64 px crops, no bicubic "
             "phase, a sparsity prior, 6000 iterations: 4-7x the time; closer on thin "
             "anisotropic blur, farther on round or wide blur; README).")] = "default",
    iters: Annotated[int | None, typer.Option(
        help="KernelGAN iterations per source (default: 3000; 6000 with --kernel-prior thin).",
        show_default=False)] = None,
    device: Annotated[str, typer.Option(help="Torch device to train on: cpu, cuda, cuda:1.")
                      ] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of every source's KernelGAN run.")] = 0,
    stride: Annotated[int, typer.Option(help="Use every Nth video frame.")] = 25,
    max_frames: Annotated[int | None, typer.Option(help="At most N frames per video.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads for torch and OpenCV (default: all). KernelGAN's layers are small: "
             "1 is about as fast as more, and much faster than more threads than free cores.")
    ] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N stills in input order (done ones included).",
        show_default=False)] = None,
    allow_mixed: Annotated[bool, typer.Option(
        "--allow-mixed", help="Resume a pool made with other settings (--iters, --seed...); "
        "each kernel keeps its own settings in its source record.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Estimate one x4 blur kernel per source image (or video frame) with KernelGAN.

    Sources are used at their own resolution: KernelGAN's cost does not grow with the image
    (it trains on fixed-size crops), and downscaling a source would change the very blur
    being measured. Images smaller than 32 px are reported and skipped.
    """
    setup_logging(verbose)
    preset_iters, options = kernelgan.preset(kernel_prior)
    iters = preset_iters if iters is None else iters
    if iters < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--iters")
    if stride < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--stride")
    if max_frames is not None and max_frames < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--max-frames")
    set_threads(threads)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise typer.BadParameter(f"unknown device {device!r}", param_hint="--device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("CUDA is not available to this torch build",
                                 param_hint="--device")
    try:
        files = expand_inputs(sources)
    except InputError as e:
        err.print(str(e))
        raise typer.Exit(2) from None
    if any(f.resolve() == out_path.resolve() for f in files):
        err.print(f"{out_path} is one of the sources; choose another --out")
        raise typer.Exit(2)

    settings = kernelgan.pool_settings(iters, seed, kernel_prior)
    kernels_done: list[torch.Tensor] = []
    records: list[dict] = []
    # the resumed pool's other settings, kept (a new pool: the prior's options)
    extra: dict = {k: v for k, v in settings.items() if k not in ESTIMATION_KEYS}
    if out_path.exists():
        try:
            pool = KernelPool.load(out_path)
        except PoolError as e:
            err.print(f"{e}; not overwriting it (choose another --out)")
            raise typer.Exit(2) from None
        if pool.kernels.shape[1:] != (kernelgan.X4_SIZE, kernelgan.X4_SIZE) or pool.scale != 4:
            err.print(f"{out_path}: holds {tuple(pool.kernels.shape[1:])} x{pool.scale} kernels, "
                      f"not 25x25 x4; not overwriting it (choose another --out)")
            raise typer.Exit(2)
        used = pool.settings_used(ESTIMATION_KEYS)
        differ = [key for key in ESTIMATION_KEYS if used[key] != [settings.get(key)]]
        if differ:
            msg = (f"{out_path} was made with {_describe(differ, used)}, this run asks for "
                   f"{_describe(differ, {key: [settings.get(key)] for key in differ})}")
            if not allow_mixed:
                err.print(f"{msg}: use another --out or --allow-mixed", soft_wrap=True)
                raise typer.Exit(2)
            err.print(f"warning: {msg}: mixing them (--allow-mixed); each kernel's settings are "
                      "in its source record", soft_wrap=True)
        kernels_done, records, extra = list(pool.kernels), list(pool.sources), pool.settings
        err.print(f"resuming {out_path}: {len(records)} kernels already there")
    done_keys = {still_key(r.get("source", ""), r.get("frame")) for r in records}

    total = count_stills(files, stride, max_frames)
    if limit is not None and limit < total:
        err.print(f"using the first {limit} of {total} stills (--limit)")
        total = limit
    report = BatchReport()
    too_small: set[Path] = set()  # report a video with tiny frames once, not per frame
    with progress() as bar:
        task = bar.add_task("kernels", total=total, note="")
        inner = bar.add_task("  KernelGAN", total=iters, note="", visible=False)

        def on_iter(i: int, n: int) -> None:
            if i % 10 == 0 or i == n:
                bar.update(inner, completed=i)

        stills = iter_sources(files, frame_stride=stride, max_frames=max_frames)
        for item in itertools.islice(stills, limit):
            key = item.key
            if item.error is not None:
                report.fail(item.path, str(item.error))
            elif key in done_keys:
                report.skipped += 1
            elif item.path not in too_small:
                h, w = item.image.shape[:2]
                if min(h, w) < kernelgan.MIN_SIDE:
                    too_small.add(item.path)
                    report.fail(item.path, str(InputError(
                        key, f"image {w}x{h} px is smaller than the {kernelgan.MIN_SIDE} px "
                             "minimum for kernel estimation")))
                else:
                    bar.update(inner, completed=0, visible=True, note=key)
                    est = kernelgan.estimate_kernel(to_tensor(item.image), iters=iters,
                                                    device=dev, seed=seed, callback=on_iter,
                                                    **options)
                    kernels_done.append(est.kernel)
                    # the recipe is recorded, not compared: "fast" computes what "legacy"
                    # did, with equal accuracy (kernelgan's docs), so pools may mix them
                    records.append({"source": str(item.path), "frame": item.frame,
                                    "width": w, "height": h, **settings,
                                    "recipe": kernelgan.RECIPES[0]})
                    done_keys.add(key)
                    pool = KernelPool(torch.stack(kernels_done), records, 4, extra)
                    pool.settings = _pool_settings(pool)
                    pool.save(out_path)
                    report.done += 1
            bar.advance(task)
        bar.update(inner, visible=False)
    if report.done:
        out.print(f"wrote {out_path}: {len(records)} kernels ({report.done} new)")
    elif records:
        out.print(f"{out_path}: nothing new to estimate ({len(records)} kernels)")
    if report.skipped:
        err.print(f"skipped {report.skipped} sources already in {out_path}")
    report.finish("sources")


def _describe(keys: list[str], values: dict[str, list]) -> str:
    """``'--iters 3000 and --seed 0'``; values a pool holds several of are joined by '/'."""
    def one(key: str) -> str:
        missing = "default" if key == "prior" else "(not recorded)"
        vals = "/".join(missing if v is None else str(v) for v in values[key])
        return f"{OPTION_NAMES.get(key, key)} {vals}"

    return " and ".join(one(key) for key in keys)


def _pool_settings(pool: KernelPool) -> dict:
    """The pool's ``settings``: the resumed file's, with each of ``ESTIMATION_KEYS`` set where
    all the records agree on it and left out (listed under ``mixed``) where they do not."""
    used = pool.settings_used(ESTIMATION_KEYS)
    kept = {k: v for k, v in pool.settings.items() if k not in ESTIMATION_KEYS and k != "mixed"}
    kept.update({key: vals[0] for key, vals in used.items()
                 if len(vals) == 1 and vals[0] is not None})
    mixed = [key for key, vals in used.items() if len(vals) > 1]
    return {**kept, "mixed": mixed} if mixed else kept
