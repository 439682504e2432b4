"""Where a run's numbers and pictures go: ``metrics.jsonl`` always, TensorBoard optionally.

``RUN/metrics.jsonl`` holds one JSON object per logging event, ``{"iter": N, "time": unix
seconds, "<tag>": value, ...}`` with tags such as ``train/l_pix`` and ``val/psnr_y``; image
grids are written to ``RUN/images/<tag>_<iter>.png``. With TensorBoard on, the same scalars
and images also go to ``RUN/tb/`` (``tensorboard --logdir RUN/tb``). On resume, records after
the checkpoint's iteration (work lost with the interruption) are dropped from both.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from torch import Tensor

from facesr.io import append_jsonl, atomic_write_text, write_image

TENSORBOARD_PIP = "tensorboard>=2.14"


def require_tensorboard() -> None:
    """Raise ImportError with the fix when TensorBoard's writer cannot be imported."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ImportError(f"train.tensorboard is on but the `tensorboard` package is not "
                          f"installed: `pip install '{TENSORBOARD_PIP}'`, or "
                          f"--set train.tensorboard=false (metrics.jsonl is always written)")


class RunLog:
    """Scalars and images of one run (main process only).

    Args:
        run_dir: the run folder.
        start: iteration the run starts or resumes at; later records are dropped.
        tensorboard: also write TensorBoard events (needs the ``tensorboard`` package).
    """

    def __init__(self, run_dir: Path, *, start: int = 0, tensorboard: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        if self.path.is_file():
            keep = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("iter", 0) <= start:
                        keep.append(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
            atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))
        self.tb = None
        if tensorboard:
            require_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start or None)

    def scalars(self, iteration: int, values: dict[str, float]) -> None:
        append_jsonl(self.path, {"iter": iteration, "time": round(time.time(), 3), **values})
        if self.tb is not None:
            for tag, v in values.items():
                self.tb.add_scalar(tag, v, iteration)

    def image(self, iteration: int, tag: str, img: Tensor) -> None:
        """Shape: img (3, H, W) in [0, 1]."""
        write_image(self.run_dir / "images" / f"{tag.replace('/', '_')}_{iteration:09d}.png",
                    img.detach().float().clamp(0, 1).cpu())
        if self.tb is not None:
            self.tb.add_image(tag, img.detach().float().clamp(0, 1).cpu(), iteration)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
