"""``facesr export onnx``: write an x4 model as ONNX for onnxruntime (``--backend onnx``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from facesr.cli._common import err, out
from facesr.io import atomic_write_bytes


def onnx(
    model: Annotated[str | None, typer.Option(
        help="Model name (realesrgan-x4plus, facesr-default) or .safetensors file. Default: "
        "facesr-default once shipped, else realesrgan-x4plus.", show_default=False)] = None,
    *,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.",
                                           dir_okay=False)],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
) -> None:
    """Export a model to ONNX (float32, dynamic batch, height and width; opset 18).

    Needs `pip install onnx==1.23.2 onnxscript==0.7.2`; the file runs with
    `facesr upscale --backend onnx --model FILE` (onnxruntime). The source model's name and
    SHA-256 are stored in the file's metadata.
    """
    from facesr.infer.onnx_backend import export_metadata, export_onnx
    from facesr.models import zoo

    if out_file.exists() and not overwrite:
        raise typer.BadParameter(f"{out_file} exists; pass --overwrite to replace it",
                                 param_hint="--out")
    if out_file.suffix.lower() != ".onnx":
        raise typer.BadParameter(f"{out_file}: the file name must end in .onnx",
                                 param_hint="--out")
    try:
        net, info = zoo.load(model or zoo.default_model_name())
        t0 = time.perf_counter()
        data = export_onnx(net, metadata=export_metadata(info))
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None
    except ImportError as e:
        err.print(f"[red]error[/red] {e}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    atomic_write_bytes(out_file, data)
    arch = info.arch
    out.print(f"wrote {out_file} ({len(data) / 2**20:.1f} MiB) from {info.name} "
              f"(RRDBNet {arch.get('num_block')} blocks, {arch.get('num_feat')} features; "
              f"sha256 {info.sha256[:12]}...) in {time.perf_counter() - t0:.1f} s",
              soft_wrap=True)
