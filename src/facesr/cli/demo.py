"""``facesr demo``: the whole job on a bundled input, written as one side-by-side PNG."""

from __future__ import annotations

import json
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
) -> None:
    """Run the main job on a bundled input and write a side-by-side PNG.

    Until the upscaler lands this shows the degradation pipeline: clean face, its
    surveillance-style x4 LR (blur, noise, JPEG), and bicubic x4 of that LR.
    """
    try:
        hr, lr, record = demo_lr(seed)
    except FileNotFoundError as e:
        err.print(str(e))
        raise typer.Exit(2) from None
    panel = side_by_side([("clean HR", hr), ("LR 48x48 (x4 nearest)", lr),
                          ("bicubic x4", bicubic_up(lr))])
    path = write_image(out_dir / "demo_side_by_side.png", panel)
    write_image(out_dir / "demo_lr.png", lr)
    atomic_write_text(out_dir / "demo_degradation.json", json.dumps(record, indent=2))
    out.print(f"wrote {path}")
