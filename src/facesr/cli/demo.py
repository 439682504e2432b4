"""``facesr demo``: the whole job on a bundled input, written as one side-by-side PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from facesr.cli._common import err, out
from facesr.demo import bicubic_up, demo_lr, side_by_side
from facesr.io import atomic_write_text, write_image


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the demo files.")
                       ] = Path("facesr-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the degradation.")] = 0,
    model: Annotated[str | None, typer.Option(
        help="Model name or weights file (default: facesr-default once shipped, else "
        "realesrgan-x4plus).", show_default=False)] = None,
) -> None:
    """Run the main job on a bundled input and write a side-by-side PNG.

    A public-domain portrait (from scikit-image) is degraded surveillance-style (camera blur,
    sensor noise, JPEG 35, x4 down to 48x48 px) and super-resolved x4. The panel shows the
    input LR, bicubic x4, facesr x4 and the clean original for reference.
    """
    from facesr.infer.pipeline import NOTICE, upscale_face
    from facesr.models import zoo

    try:
        hr, lr, record = demo_lr(seed)
    except FileNotFoundError as e:
        err.print(str(e))
        raise typer.Exit(2) from None
    write_image(out_dir / "demo_lr.png", lr)
    atomic_write_text(out_dir / "demo_degradation.json", json.dumps(record, indent=2))
    bicubic = bicubic_up(lr)
    try:
        name = model or zoo.default_model_name()
        net, info = zoo.load(name)
    except (FileNotFoundError, ValueError) as e:
        if model is not None:
            raise typer.BadParameter(str(e), param_hint="--model") from None
        err.print(f"[yellow]no x4 model[/yellow]: {e}", soft_wrap=True)
        path = write_image(out_dir / "demo_side_by_side.png", side_by_side(
            [("input LR 48x48 (x4 nearest)", lr), ("bicubic x4", bicubic), ("clean HR", hr)]))
        out.print(f"wrote {path} (degradation only: no model to upscale with)", soft_wrap=True)
        return
    if name == "realesrgan-x4plus":
        out.print("using realesrgan-x4plus (Real-ESRGAN x4plus, a general-purpose model; "
                  "facesr's own face model is not shipped yet)", soft_wrap=True)
    t0 = time.perf_counter()
    sr = upscale_face(lr, net)
    seconds = time.perf_counter() - t0
    panel = side_by_side([("input LR 48x48 (x4 nearest)", lr), ("bicubic x4", bicubic),
                          (f"facesr x4 ({info.name})", sr), ("clean HR (reference)", hr)])
    path = write_image(out_dir / "demo_side_by_side.png", panel)
    write_image(out_dir / "demo_sr.png", sr)
    atomic_write_text(out_dir / "demo_sr.json", json.dumps(
        {"notice": NOTICE, "model": info.record(), "input": "demo_lr.png",
         "output": "demo_sr.png", "seconds": round(seconds, 3)}, indent=2) + "\n")
    out.print(f"upscaled 48x48 -> 192x192 with {info.name} in {seconds:.1f} s", soft_wrap=True)
    out.print(f"wrote {path}", soft_wrap=True)
    out.print(NOTICE, soft_wrap=True)
