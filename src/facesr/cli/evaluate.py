"""``facesr evaluate synthetic|real``: score methods on degraded clean faces or on real faces.

Layout of ``--out DIR``:

- ``table.md``, ``table.csv``: one row per method, mean and 95% t-interval of every metric over
  the images, and the number of images; with two methods or more, ``paired.md`` (also at the
  end of ``table.md`` and on the page): every other method minus the baseline (``--baseline``;
  default bicubic when among the methods, else the first) image by image, the mean difference
  with its paired 95% interval and the images where the method was better (``real``: of the
  no-reference scores);
- ``per_image.csv``: image, method, one column per metric (empty where not computable), notes;
- ``images/lr/<image>.png`` (the inputs the methods got), ``images/hr/<image>.png``
  (synthetic: the references), ``images/<method>/<image>.png`` (each method's output);
- ``report.html``: the table and every image side by side with its scores;
- ``run.json``: settings, versions, models and pools with their sha256, counts, time taken;
- ``records.jsonl``: one line per finished image input and per finished (image, method): a
  killed run re-run with the same arguments computes only what is missing.

The baseline only shapes the tables: a re-run with another ``--baseline`` (or ``--limit``,
``--threads``) reuses every result and writes the tables afresh.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from facesr.cli._common import BatchReport, err, out, progress
from facesr.cli.pairs import open_pools, pair_names, parse_overrides
from facesr.data.inputs import hq_files
from facesr.eval.folder import Prepare
from facesr.io import InputError, atomic_write_text, sha256_file

SCALE = 4
RESERVED = ("lr", "hr")  # image folders of the layout; no method may take these names
PRESET_HR_SIZE = {"sharp": 256}  # the clean faces' longer side for a preset's protocol


# ----------------------------------------------------------------------------- options
MethodsOpt = Annotated[str, typer.Option(
    "--methods", help="Comma-separated: bicubic, lanczos, model names (realesrgan-x4plus, "
    "facesr-default) or x4 weight files (.safetensors, .pth).", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (tables, images, report).",
                                      file_okay=False, show_default=False)]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="Use only the first N images.")]
WeightsOpt = Annotated[Path | None, typer.Option(
    help="Metric weights folder laid out like shared/weights (searched before "
    "$FACESR_WEIGHTS and ~/.local/share/facesr/weights).")]
CropOpt = Annotated[int, typer.Option(min=0, help="Pixels cropped from every side of the "
                                      "output before scoring.")]
DeviceOpt = Annotated[str, typer.Option(help="cpu or cuda: where models and metrics run.")]
TileOpt = Annotated[int, typer.Option(min=0, help="Model tile side in input px (0: whole "
                                      "image).")]
BaselineOpt = Annotated[str | None, typer.Option(
    help="The method (its label in --methods) the others are paired with, image by image, "
    "in paired.md, table.md and report.html (default: bicubic when among the methods, else "
    "the first). Tables only: a resumed run may change it.", show_default=False)]
ThreadsOpt = Annotated[int | None, typer.Option(min=1, help="CPU threads (default: all).")]
OverwriteOpt = Annotated[bool, typer.Option(
    help="Discard the results already in --out and start afresh (without it, results made "
    "with other settings are refused, never mixed).")]


def synthetic(
    hq: Annotated[list[Path], typer.Option("--hq", help="Clean faces: images, folders or .txt "
                                           "lists (repeatable).", show_default=False)],
    methods: MethodsOpt,
    out_dir: OutOpt,
    kernels: Annotated[Path | None, typer.Option(help="Kernel pool (.safetensors).")] = None,
    noise: Annotated[Path | None, typer.Option(
        help="Noise pool (.safetensors); only presets that draw pool noise use it.")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Comma-separated metrics (default: psnr, ssim, lpips, ms_ssim, niqe, brisque: "
        "those registered).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Degradation seed: same seed, same inputs.")] = 0,
    preset: Annotated[str, typer.Option(
        help="Degradation preset; synthetic = the paper's test protocol (pool kernel, "
        "Gaussian noise sigma 8, JPEG 30); sharp = the sharp-face protocol (faces at 256 px, "
        "anisotropic Gaussian blur sigma 0.8-3.0, noise sigma 8, JPEG 30).")] = "synthetic",
    hr_size: Annotated[int | None, typer.Option(
        min=16, help="Area-downscale clean faces whose longer side is above this first "
        "(default: 256 for --preset sharp, else none).", show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a degradation setting, e.g. --set noise_sigma=5")] = None,
    baseline: BaselineOpt = None, limit: LimitOpt = None, weights: WeightsOpt = None,
    crop_border: CropOpt = SCALE, device: DeviceOpt = "cpu", tile: TileOpt = 256,
    threads: ThreadsOpt = None, overwrite: OverwriteOpt = False,
) -> None:
    """Degrade clean faces (seeded per image), run every method, score against the originals."""
    from facesr.degrade.degradation import PRESETS
    from facesr.eval.inputs import shrink, synthetic_pair

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}",
                                 param_hint="--preset")
    cfg = parse_overrides(PRESETS[preset], set_ or [])
    if cfg.scale != SCALE:
        raise typer.BadParameter(f"methods here are x{SCALE}; the degradation is x{cfg.scale}",
                                 param_hint="--set")
    names = _metrics(metrics, True)
    meths = _methods(methods, device, tile, threads)
    baseline = _baseline(baseline, meths)
    scorers = _load_metrics(names, weights, device, crop_border)
    pools = open_pools(kernels, noise, cfg)
    if noise is not None and pools.noise is None:
        err.print(f"note: --noise is not used: preset {preset!r} draws noise {cfg.noise!r}")
    files = _files(hq, out_dir, lambda: hq_files(hq), limit)
    if hr_size is None:
        hr_size = PRESET_HR_SIZE.get(preset)

    def prepare(img, name: str) -> tuple:
        hr, lr, params = synthetic_pair(shrink(img, hr_size), name, seed=seed, pools=pools,
                                        cfg=cfg)
        extra = {"hr_size": list(hr.shape[-2:]), "degradation": params.record}
        if pools.kernels is not None and isinstance(params.record.get("kernel"), int):
            extra["kernel_source"] = pools.kernels.sources[params.record["kernel"]]
        return lr, hr, extra

    settings = {"mode": "synthetic", "scale": SCALE, "metrics": names, "crop_border": crop_border,
                "device": device, "preset": preset, "degradation": dataclasses.asdict(cfg),
                "seed": seed, "hr_size": hr_size,
                "kernels_sha256": sha256_file(kernels) if pools.kernels and kernels else None,
                "noise_sha256": sha256_file(noise) if pools.noise and noise else None}
    extra = {"hq": [str(p) for p in hq], "kernels": None if kernels is None else str(kernels),
             "noise": None if noise is None else str(noise)}
    _evaluate(files, meths, scorers, out_dir, settings, prepare, overwrite,
              {**extra, "limit": limit, "weights": None if weights is None else str(weights),
               "tile": tile, "threads": threads, "baseline": baseline})


def real(
    lq: Annotated[list[Path], typer.Option("--lq", help="Real low-quality faces: images, "
                                           "folders or .txt lists (repeatable).",
                                           show_default=False)],
    methods: MethodsOpt,
    out_dir: OutOpt,
    metrics: Annotated[str | None, typer.Option(
        help="Comma-separated no-reference metrics (default: niqe, brisque, piqe: those "
        "registered).", show_default=False)] = None,
    max_side: Annotated[int | None, typer.Option(
        min=8, help="Area-downscale inputs with a longer side above this first (for crops "
        "stored larger than their true resolution).")] = None,
    baseline: BaselineOpt = None, limit: LimitOpt = None, weights: WeightsOpt = None,
    crop_border: CropOpt = SCALE, device: DeviceOpt = "cpu", tile: TileOpt = 256,
    threads: ThreadsOpt = None, overwrite: OverwriteOpt = False,
) -> None:
    """Run every method on real faces and score the outputs with no-reference metrics."""
    from facesr.eval.inputs import shrink

    names = _metrics(metrics, False)
    meths = _methods(methods, device, tile, threads)
    baseline = _baseline(baseline, meths)
    scorers = _load_metrics(names, weights, device, crop_border)
    files = _files(lq, out_dir, lambda: hq_files(lq), limit)

    def prepare(img, _name: str) -> tuple:
        lr = shrink(img, max_side)
        return lr, None, {"resized": tuple(lr.shape) != tuple(img.shape)}

    settings = {"mode": "real", "scale": SCALE, "metrics": names, "crop_border": crop_border,
                "device": device, "max_side": max_side}
    _evaluate(files, meths, scorers, out_dir, settings, prepare, overwrite,
              {"lq": [str(p) for p in lq], "limit": limit,
               "weights": None if weights is None else str(weights), "tile": tile,
               "threads": threads, "baseline": baseline})


# ----------------------------------------------------------------------------- set-up
def _metrics(given: str | None, with_reference: bool) -> list[str]:
    from facesr.eval.scoring import check_metrics, default_metrics

    names = default_metrics(with_reference) if given is None else [
        n.strip() for n in given.split(",") if n.strip()]
    if given is None and with_reference and "identity" not in names:
        err.print('note: identity metrics left out: pip install -e ".[identity]" (dlib and '
                  "its face-recognition models) to measure identity")
    try:
        check_metrics(names, with_reference)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--metrics") from None
    return names


def _methods(given: str, device: str, tile: int, threads: int | None) -> list:
    import torch

    from facesr.eval.methods import resolve_methods

    if device not in ("cpu", "cuda"):
        raise typer.BadParameter(f"{device!r} is not one of cpu, cuda", param_hint="--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("--device cuda, but this PyTorch has no usable CUDA GPU")
    if threads:
        torch.set_num_threads(threads)
    specs = [s.strip() for s in given.split(",") if s.strip()]
    try:
        meths = resolve_methods(specs, device=device, tile=tile)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise typer.BadParameter(str(e), param_hint="--methods") from None
    clash = [m.name for m in meths if m.name in RESERVED]
    if clash:
        raise typer.BadParameter(f"a method may not be named {', '.join(clash)} (folders of "
                                 "the inputs and references): rename the file",
                                 param_hint="--methods")
    return meths


def _baseline(given: str | None, meths: list) -> str:
    """The paired tables' baseline: ``given`` (a method's label), else bicubic when among the
    methods, else the first; a name that is not a label is a usage error naming the labels."""
    from facesr.eval.render import default_baseline

    labels = [m.name for m in meths]
    if given is None:
        return default_baseline(labels)
    if given not in labels:
        raise typer.BadParameter(f"{given!r} is not one of the methods; one of "
                                 f"{', '.join(labels)}", param_hint="--baseline")
    return given


def _load_metrics(names: list[str], weights: Path | None, device: str, crop_border: int):
    """Every metric loaded now, so missing weights stop the run before any work (exit 2)."""
    from facesr.eval.scoring import MetricLoadError, MetricSet

    try:
        return MetricSet.load(names, weights_dir=weights, device=device, crop_border=crop_border)
    except MetricLoadError as e:
        err.print(f"{e}. Give the folder with --weights DIR, or leave {e.metric} out of "
                  "--metrics.", soft_wrap=True, markup=False)
        raise typer.Exit(2) from None


def _files(given: list[Path], out_dir: Path, expand: Callable[[], list[Path]],
           limit: int | None) -> list[tuple[Path, str]]:
    """(file, image name) of the images to use: names and their seeds come from the whole set,
    so ``--limit`` only cuts the list; nothing inside ``out_dir``."""
    try:
        files = expand()
    except InputError as e:
        err.print(str(e), soft_wrap=True, markup=False)
        raise typer.Exit(2) from None
    root = out_dir.resolve()
    files = list(dict.fromkeys(f for f in files if root not in f.resolve().parents))
    if not files:
        err.print(f"no images found in {', '.join(map(str, given))}")
        raise typer.Exit(2)
    return list(zip(files, pair_names(files), strict=True))[:limit]


# ----------------------------------------------------------------------------- the run
def _evaluate(files: list[tuple[Path, str]], meths: list, scorers, out_dir: Path,
              settings: dict, prepare: Prepare, overwrite: bool, extra: dict) -> None:
    from facesr.eval.folder import (
        FolderConflict,
        evaluate_image,
        history,
        reusable_records,
        versions,
    )
    from facesr.eval.records import index_records

    t_start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        inputs, results = index_records(reusable_records(out_dir, settings, meths, overwrite))
    except FolderConflict as e:
        err.print(str(e), soft_wrap=True, markup=False)
        raise typer.Exit(2) from None
    earlier = [] if overwrite else history(out_dir / "run.json")
    run = {"command": f"facesr evaluate {settings['mode']}", "settings": settings,
           "methods": [{**m.record, "spec": m.spec, "identity": m.identity} for m in meths],
           **extra, "versions": versions(), "finished": False,
           "started": datetime.now(UTC).isoformat(timespec="seconds"),
           "history": earlier}
    atomic_write_text(out_dir / "run.json", json.dumps(run, indent=2) + "\n")
    report, stale = BatchReport(), set()
    with progress() as bar:
        task = bar.add_task(f"evaluate {settings['mode']}", total=len(files), note="")
        for path, name in files:
            bar.update(task, note=name)
            try:
                status = evaluate_image(path, name, meths, scorers, prepare, inputs, results,
                                        out_dir)
            except InputError as e:
                report.fail(path, str(e))
                stale.add(name)
            except (ValueError, RuntimeError) as e:  # e.g. an image too small to degrade
                report.fail(path, f"{path}: {e}")
            else:
                if status == "skipped":
                    report.skipped += 1
                elif status == "done":
                    report.done += 1
                else:
                    report.fail(path, f"{path}: {status}")
            bar.advance(task)
    names = [n for _, n in files if n in inputs and n not in stale]
    counts = {"selected": len(files), "done": report.done, "skipped": report.skipped,
              "failed": len(report.failed)}
    elapsed = round(time.perf_counter() - t_start, 2)
    run.update(finished=True, images=counts, elapsed_s=elapsed,
               history=[*earlier, {"started": run["started"], "elapsed_s": elapsed,
                                   "methods": [m.name for m in meths], "images": counts}])
    _write_outputs(out_dir, names, inputs, results, meths, scorers.names, settings, run,
                   extra["baseline"])
    report.finish("images")


def _write_outputs(out_dir: Path, names: list[str], inputs: dict, results: dict, meths: list,
                   metrics: list[str], settings: dict, run: dict, baseline: str) -> None:
    from facesr.eval.render import render
    from facesr.metrics import METRICS

    r = render(images=names, inputs=inputs, results=results, methods=[m.name for m in meths],
               metrics=metrics, directions={k: METRICS[k].direction for k in metrics},
               settings=settings, baseline=baseline)
    for file, text in r.files.items():
        atomic_write_text(out_dir / file, text)
    atomic_write_text(out_dir / "run.json", json.dumps(run, indent=2) + "\n")
    out.print(r.markdown, markup=False, soft_wrap=True)
    for line in r.notes:
        err.print(f"note: {line}", markup=False, soft_wrap=True)
    out.print(f"tables, per-image scores, images and report.html in {out_dir}")
