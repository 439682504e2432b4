"""The methods a benchmark compares: classical x4 resampling and x4 networks, one interface.

A method is a name and a function (3, h, w) -> (3, 4h, 4w); ``bicubic`` and ``lanczos`` are
:func:`facesr.infer.pipeline.resample`; anything else is a model name of
:data:`facesr.models.zoo.MODELS` or a weights file, loaded once with
:func:`facesr.models.zoo.load` and run through :func:`facesr.infer.pipeline.upscale_face`
(tiled, exact x4, any input size).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

CLASSICAL = ("bicubic", "lanczos")
SCALE = 4
RAW = ":raw"  # a model spec ending so runs without the colour lock (pipeline.color_lock)


@dataclass(frozen=True)
class Method:
    """One method: ``run(lr)`` is (3, h, w) -> (3, 4h, 4w) in [0, 1] on the CPU.

    Attributes:
        name: label used in tables and as a folder name (the zoo name, or the file's stem).
        spec: what was asked for (``bicubic``, a zoo name, a path).
        identity: what its results depend on (``classical:bicubic``, or the model's sha256);
            results recorded under another identity must not be mixed with this one's.
        record: JSON-able description for run records (the model's provenance).
    """

    name: str
    spec: str
    identity: str
    run: Callable[[Tensor], Tensor] = field(repr=False, compare=False)
    record: dict = field(default_factory=dict, compare=False)


LABEL = re.compile(r"[A-Za-z0-9._-]+")


def split_label(spec: str) -> tuple[str | None, str]:
    """``"v3=runs/a/model.safetensors"`` -> ``("v3", "runs/a/model.safetensors")``; a spec
    without a ``label=`` prefix (or an existing file whose name holds ``=``) -> ``(None, spec)``.

    >>> split_label("v3=runs/a/model.safetensors:raw")
    ('v3', 'runs/a/model.safetensors:raw')
    """
    label, sep, rest = spec.partition("=")
    if sep and rest and LABEL.fullmatch(label) and not Path(spec).exists():
        return label, rest
    return None, spec


def method_name(spec: str) -> str:
    """The label of a method spec: ``label=`` when given, classical and zoo names as they
    are, a path's file stem; ``-raw`` appended for ``:raw``.

    >>> method_name("runs/x/ema_400000.safetensors")
    'ema_400000'
    >>> method_name("v3=runs/x/model.safetensors")
    'v3'
    """
    from facesr.models.zoo import MODELS

    label, spec = split_label(spec)
    if label is not None:
        return label
    if spec.endswith(RAW) and spec not in CLASSICAL:
        return method_name(spec[:-len(RAW)]) + "-raw"
    if spec in CLASSICAL or spec in MODELS:
        return spec
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(spec).stem) or "model"


def resolve_methods(specs: list[str], *, device: str = "cpu", tile: int = 256,
                    overlap: int = 16) -> list[Method]:
    """Check every spec first, then load each model once.

    Args:
        specs: method specs, e.g. ``["bicubic", "realesrgan-x4plus", "run/ema.safetensors"]``;
            a model spec ending in ``:raw`` runs without the colour lock (named ``<name>-raw``);
            ``label=spec`` names a method (two runs' ``model.safetensors`` side by side).
        device: where networks run (outputs come back to the CPU).
        tile, overlap: tiling of network inputs (see :func:`facesr.infer.pipeline.upscale_face`).

    Raises:
        ValueError: an empty list, an unknown method, two methods with one name, or a file that
            is not an x4 model (the message says which and what is accepted).
        FileNotFoundError: a named model whose weights are not installed.
    """
    from facesr.models.zoo import MODELS

    if not specs:
        raise ValueError("no methods given")
    for spec in specs:
        base = split_label(spec)[1]
        base = base[:-len(RAW)] if base.endswith(RAW) else base
        if base not in CLASSICAL and base not in MODELS and not Path(base).is_file():
            raise ValueError(f"unknown method {spec!r}: use {', '.join(CLASSICAL)}, a model "
                             f"name ({', '.join(MODELS)}) or an x4 weights file "
                             "(.safetensors, .pth)")
    names = [method_name(s) for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two methods are named {', '.join(dupes)}: give each once (rename "
                         "weight files that share a stem)")
    return [_load(spec, name, device, tile, overlap) for spec, name in zip(specs, names,
                                                                            strict=True)]


def _load(spec: str, name: str, device: str, tile: int, overlap: int) -> Method:
    from facesr.infer.pipeline import COLOR_LOCK, resample, torch_runner, upscale_face
    from facesr.models import zoo

    spec = split_label(spec)[1]
    raw = spec.endswith(RAW) and spec not in CLASSICAL
    spec = spec[:-len(RAW)] if raw else spec
    if spec in CLASSICAL:
        return Method(name, spec, f"classical:{spec}",
                      lambda lr: resample(lr.cpu(), SCALE, spec),
                      {"name": name, "kind": "classical", "resampling": spec})
    net, info = zoo.load(spec, device=device)
    runner = torch_runner(net, device=device, dtype=torch.float32)

    lock = None if raw else COLOR_LOCK

    def run(lr: Tensor) -> Tensor:
        return upscale_face(lr, runner, tile=tile, overlap=overlap, lock_colors=lock).cpu()

    return Method(name, spec + (RAW if raw else ""), f"{info.sha256}:color_lock={lock}", run,
                  {"name": name, "kind": "model", "model": info.record(), "color_lock": lock})
