"""``facesr pairs``: LR/HR training pairs on disk, each with the parameters that made it.

``--limit N`` uses only the first N HQ files in input order (:func:`facesr.data.inputs.hq_files`);
pair names, and so each pair's seeded degradation, come from the whole list, so a limited run
makes exactly the first N sources' pairs of the full run and a later run with a larger limit
(or none) into the same ``--out`` adds the rest. ``--threads N`` sets the CPU threads of torch
and OpenCV. Neither is a setting of the pairs (not in ``run.json``).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path
from typing import Annotated

import typer

from facesr.cli._common import (
    BatchReport,
    ThreadsOption,
    err,
    limit_note,
    out,
    progress,
    set_threads,
)
from facesr.config import ConfigError, apply_overrides
from facesr.data.inputs import MissingPool, hq_files, load_pools
from facesr.degrade.degradation import PRESETS, DegradeConfig, Pools
from facesr.degrade.pairs import HR_FACTORS, hr_variant, make_pair, pair_rng, variant_size
from facesr.degrade.pools import PoolError
from facesr.io import (
    InputError,
    append_jsonl,
    atomic_write_text,
    image_size,
    read_image,
    read_jsonl,
    sha256_file,
    write_image,
)


def parse_overrides(cfg: DegradeConfig, items: list[str]) -> DegradeConfig:
    """Apply ``key=value`` overrides to a degradation config, as ``facesr train --set`` does
    (values parsed as YAML, then the strict typed loader: wrong types name the key)."""
    try:
        return DegradeConfig.from_dict(apply_overrides(dataclasses.asdict(cfg), items))
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="--set") from None


def open_pools(kernels: Path | None, noise: Path | None, cfg: DegradeConfig) -> Pools:
    """:func:`facesr.data.inputs.load_pools` for a command: a missing pool is a usage error,
    an unreadable one exits 2 with its message."""
    try:
        return load_pools(cfg, kernels, noise)
    except MissingPool as e:
        raise typer.BadParameter(f"{e}: give --{e.what} FILE") from None
    except PoolError as e:
        err.print(str(e))
        raise typer.Exit(2) from None


def pair_names(files: list[Path]) -> list[str]:
    """Unique, stable names: '<folder>_<stem>', with a path hash where two would clash."""
    base = [f"{f.parent.name}_{f.stem}" for f in files]
    seen: dict[str, int] = {}
    for b in base:
        seen[b] = seen.get(b, 0) + 1
    return [b if seen[b] == 1 else f"{b}_{zlib.crc32(str(f).encode()):08x}"
            for b, f in zip(base, files, strict=True)]


def _sha256(path: Path | None) -> str | None:
    return sha256_file(path) if path else None


def pairs(
    hq: Annotated[list[Path], typer.Argument(help="Clean HQ faces: images, folders, or .txt "
                                                  "lists from `facesr data curate`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (lr/, hr/, manifest).")],
    kernels: Annotated[Path | None, typer.Option(help="Kernel pool (.safetensors).")] = None,
    noise: Annotated[Path | None, typer.Option(help="Noise pool (.safetensors).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed: same seed, same pairs.")] = 0,
    preset: Annotated[str, typer.Option(help=f"Degradation preset: {', '.join(PRESETS)}.")
                      ] = "paper",
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a degradation setting, e.g. --set jpeg_prob=0.5")] = None,
    factors: Annotated[str, typer.Option(help="HR scale factors (target augmentation).")
                       ] = ",".join(str(f) for f in HR_FACTORS),
    min_hr: Annotated[int, typer.Option(help="Skip HR variants smaller than this (px).")] = 64,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N HQ files in input order (arguments as given, folders "
        "sorted, lists in their order).", show_default=False)] = None,
    threads: ThreadsOption = None,
) -> None:
    """Write LR/HR training pairs, incl. 25/50/75%-downscaled HR copies, and a manifest."""
    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    cfg = parse_overrides(PRESETS[preset], set_ or [])
    try:
        facs = [float(f) for f in factors.split(",") if f.strip()]
    except ValueError:
        raise typer.BadParameter(f"not a list of numbers: {factors!r}") from None
    if not facs or any(not 0 < f <= 1 for f in facs):
        raise typer.BadParameter("factors must be in (0, 1]", param_hint="--factors")
    set_threads(threads)
    pools = open_pools(kernels, noise, cfg)
    try:
        files = hq_files(hq)
    except InputError as e:
        err.print(str(e))
        raise typer.Exit(2) from None
    # names (and so seeds) from the whole list: --limit only cuts it
    named = list(zip(files, pair_names(files), strict=True))
    cut = limit_note(len(named[:limit]), len(named))
    named = named[:limit]
    run = {"preset": preset, "degradation": dataclasses.asdict(cfg), "seed": seed,
           "factors": facs, "min_hr": min_hr,
           "kernels": {"path": str(kernels), "sha256": _sha256(pools.kernels and kernels)},
           "noise": {"path": str(noise), "sha256": _sha256(pools.noise and noise)}}
    run_file = out_dir / "run.json"
    if run_file.exists():
        old = json.loads(run_file.read_text())
        if old != json.loads(json.dumps(run)):
            err.print(f"{out_dir} holds pairs made with other settings or pools; "
                      "choose another --out (nothing was changed)")
            raise typer.Exit(2)
    else:
        atomic_write_text(run_file, json.dumps(run, indent=2))
    manifest = out_dir / "manifest.jsonl"
    done = {r["name"] for r in read_jsonl(manifest)}
    report = BatchReport()
    with progress() as bar:
        task = bar.add_task("pairs", total=len(named), note="")
        for f, name in named:
            bar.advance(task)
            try:
                h, w = image_size(f)
                todo = [(fac, f"{name}_s{round(fac * 100):03d}") for fac in facs
                        if min(variant_size(h, w, fac, cfg.scale)) >= min_hr]
                todo = [(fac, n) for fac, n in todo if n not in done]
                if not todo:
                    report.skipped += 1
                    continue
                img = read_image(f)
            except InputError as e:
                report.fail(f, str(e))
                continue
            for fac, pname in todo:
                hr = hr_variant(img, fac, cfg.scale)
                lr, params = make_pair(hr, pair_rng(seed, pname), pools, cfg)
                write_image(out_dir / "hr" / f"{pname}.png", hr)
                write_image(out_dir / "lr" / f"{pname}.png", lr)
                rec = {"name": pname, "hq": str(f), "factor": fac,
                       "hr_size": list(hr.shape[-2:]), "lr_size": list(lr.shape[-2:]),
                       "degradation": params.record}
                if pools.kernels is not None and isinstance(params.record["kernel"], int):
                    rec["kernel_source"] = pools.kernels.sources[params.record["kernel"]]
                append_jsonl(manifest, rec)
            report.done += 1
    out.print(f"pairs in {out_dir} (manifest: {manifest})" + (f"; {cut}" if cut else ""))
    report.finish("HQ images")
