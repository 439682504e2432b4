"""``--model``: load it for ``--backend`` torch or onnx on ``--device`` at ``--precision``, and
the model's part of every record."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from facesr.cli._common import err
from facesr.infer.pipeline import auto_runner


def _load(model: str | None, backend: str, device: str, precision: str, threads: int | None):
    """(runner, model info dict, precision used) or typer.BadParameter."""
    from facesr.models import zoo

    if backend == "onnx" and precision not in ("auto", "fp32"):
        raise typer.BadParameter("the onnx backend runs fp32 only (--precision fp32)",
                                 param_hint="--precision")
    if device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("--device cuda, but this PyTorch has no usable CUDA GPU",
                                 param_hint="--device")
    try:
        name = model or zoo.default_model_name()
        if backend == "onnx":
            from facesr.infer.onnx_backend import OnnxRunner, export_onnx, load_onnx

            if name.lower().endswith(".onnx"):
                runner, info = load_onnx(name, device=device, threads=threads)
            else:
                net, info = zoo.load(name)
                err.print(f"exporting {info.name} to ONNX in memory (save it once with "
                          "`facesr export onnx` to skip this)")
                runner = OnnxRunner(export_onnx(net), device=device, threads=threads)
            return runner, _model_record(info, name), "fp32"
        net, info = zoo.load(name, device=device)
        runner, label = auto_runner(net, device=device, precision=precision)
        return runner, _model_record(info, name), label
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None


def _model_record(info, name: str) -> dict:
    """The model's record with absolute, resolved file paths, plus ``path`` when --model named
    a file (weights or .onnx)."""
    rec = info.record()
    rec["files"] = {str(Path(p).resolve()): h for p, h in rec.get("files", {}).items()}
    if Path(name).is_file():
        rec["path"] = str(Path(name).resolve())
    return rec
