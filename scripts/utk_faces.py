"""UTKFace training faces for the experiment scripts: the shared copy's faces outside the
``configs/splits/utk-val.txt`` and ``utk-test.txt`` lists (used by identity_finetune.py,
burst_deblock.py and burst_post.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
UTK = ROOT.parent / "shared" / "data" / "faces_hq" / "utkface"


def utk_training_faces(n: int, rng: np.random.Generator) -> list[Path]:
    """``n`` (at most all) UTKFace faces outside utk-val/utk-test, drawn with ``rng``, in
    file-name order."""
    lists = ROOT / "configs" / "splits"
    held = {Path(p).name for f in ("utk-val.txt", "utk-test.txt")
            for p in (lists / f).read_text().split()}
    utk = sorted(p for p in UTK.glob("*.jpg") if p.name not in held)
    pick = rng.choice(len(utk), size=min(n, len(utk)), replace=False)
    return [utk[i] for i in sorted(pick)]
