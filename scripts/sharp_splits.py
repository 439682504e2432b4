"""Person-disjoint train / validation / test lists of the sharp face sets in
``../shared/data/faces_hq`` (the sharp-face protocol of ``facesr evaluate synthetic --preset
sharp``), and 256 px copies of the training faces.

    python scripts/sharp_splits.py --hq ../shared/data/faces_hq --out configs/splits \
        --cache runs/hq-sharp256

- london512: 102 people, two photos each (``n_<id>_*``, ``s_<id>_*``): people are split, never
  photos: 46 for training, 10 for validation, 46 for testing (seeded by the id);
- canada512 (40 people, one photo each): validation;
- alae512, celebahq, ffhq512 (one photo per file, identities unknown): testing only, so that
  no unknown identity can be on two sides.

Writes ``sharp-train.txt`` (paths of the 256 px copies in ``--cache``: 512 px JPEGs decode too
slowly for a CPU training step, and the protocol's faces are 256 px), ``sharp-val.txt`` and
``sharp-test.txt`` (paths of the originals, as given by ``--hq``).
"""

from __future__ import annotations

import argparse
import os
import zlib
from pathlib import Path

import cv2

TEST_ONLY = ("alae512", "celebahq", "ffhq512")
SIDES = {"train": 46, "val": 10}  # london people; the rest test


def london_sides(files: list[Path]) -> dict[str, str]:
    """person id -> train / val / test, by a hash of the id (stable, order-free)."""
    ids = sorted({f.stem.split("_")[1] for f in files},
                 key=lambda i: (zlib.crc32(f"london-{i}".encode()), i))
    side = {}
    for k, i in enumerate(ids):
        side[i] = ("train" if k < SIDES["train"] else
                   "val" if k < SIDES["train"] + SIDES["val"] else "test")
    return side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hq", type=Path, default=Path("../shared/data/faces_hq"))
    ap.add_argument("--out", type=Path, default=Path("configs/splits"))
    ap.add_argument("--cache", type=Path, default=Path("runs/hq-sharp256"))
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    imgs = lambda d: sorted(p for p in (args.hq / d).iterdir()  # noqa: E731
                            if p.suffix.lower() in (".jpg", ".png"))
    london = imgs("london512")
    side = london_sides(london)
    lists: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for f in london:
        lists[side[f.stem.split("_")[1]]].append(f)
    lists["val"] += imgs("canada512")
    for d in TEST_ONLY:
        lists["test"] += imgs(d)
    args.cache.mkdir(parents=True, exist_ok=True)
    cached = []
    for f in lists["train"]:
        dst = args.cache / f"{f.stem}.png"
        if not dst.exists():
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            small = cv2.resize(img, (args.size, args.size), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dst), small)
        cached.append(dst)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, files in (("train", cached), ("val", lists["val"]), ("test", lists["test"])):
        # relative to the list's folder (facesr.data.inputs.hq_files), so it works from anywhere
        text = "".join(f"{os.path.relpath(Path(p).absolute(), args.out.absolute())}\n"
                       for p in files)
        (args.out / f"sharp-{name}.txt").write_text(text, encoding="utf-8")
        print(f"sharp-{name}.txt: {len(files)} faces")


if __name__ == "__main__":
    main()
