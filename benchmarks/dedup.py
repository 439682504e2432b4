"""Near-duplicate signatures: cost, the distances behind the threshold, duplicates in shared data.

    OMP_NUM_THREADS=1 python benchmarks/dedup.py              # all of ../shared/data/faces_hq
    OMP_NUM_THREADS=1 python benchmarks/dedup.py --sets london512 alae512 --sample 50

Prints (1) per set: seconds to read and sign every file, seconds to group them, and the
groups of near-duplicates found (within the set, and across sets); (2) the distances of
copies of ``--sample`` faces per set to their original (JPEG quality 90 / 75 / 50, resized by
one pixel and back, both, gamma 0.9, a 0.5% and a 1% re-crop) against the distances between
the neutral and the smiling photo of each ``london512`` person and between different people
there, which :data:`facesr.data.dedup.DUPLICATE_DISTANCE` must separate. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from facesr.data.dedup import DUPLICATE_DISTANCE, file_signatures, signature, signature_groups
from facesr.io import expand_inputs, read_image_array

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SETS = ("utkface", "alae512", "celebahq", "ffhq512", "london512", "canada512")


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    bgr = (np.clip(img, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8)
    _, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255


def _resized(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    small = cv2.resize(img, (w - 1, h - 1), interpolation=cv2.INTER_AREA)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def _recrop(img: np.ndarray, share: float) -> np.ndarray:
    h, w = img.shape[:2]
    k = max(1, round(share * w))
    return cv2.resize(img[k:, k:], (w, h), interpolation=cv2.INTER_AREA)


COPIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg q90": lambda x: _jpeg(x, 90), "jpeg q75": lambda x: _jpeg(x, 75),
    "resized 1 px": _resized, "q75 + resized": lambda x: _jpeg(_resized(x), 75),
    "jpeg q50": lambda x: _jpeg(x, 50), "gamma 0.9": lambda x: x ** 0.9,
    "re-crop 0.5%": lambda x: _recrop(x, 0.005), "re-crop 1%": lambda x: _recrop(x, 0.01)}


def _row(name: str, d: np.ndarray) -> str:
    q = np.quantile(d, [0.0, 0.01, 0.5, 0.99, 1.0])
    return f"{name:28s} {len(d):6d}  " + "  ".join(f"{v:.4f}" for v in q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hq", type=Path, default=SHARED / "data" / "faces_hq")
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--sample", type=int, default=100, help="faces per set to copy")
    args = ap.parse_args()

    names, sigs, where = [], [], []
    print(f"threshold {DUPLICATE_DISTANCE}\n{'set':12s} {'files':>6s} {'sign s':>7s} "
          f"{'group s':>7s} {'groups':>6s} {'in groups':>9s}")
    for s in args.sets:
        files = sorted(expand_inputs([args.hq / s], kinds=("image",)), key=str)
        t0 = time.perf_counter()
        sig = file_signatures(files)
        t1 = time.perf_counter()
        groups = signature_groups(sig)
        t2 = time.perf_counter()
        print(f"{s:12s} {len(files):6d} {t1 - t0:7.1f} {t2 - t1:7.2f} {len(groups):6d} "
              f"{sum(map(len, groups)):9d}")
        names += [f"{s}/{f.name}" for f in files]
        sigs.append(sig)
        where += [s] * len(files)
    t0 = time.perf_counter()
    groups = signature_groups(np.concatenate(sigs))
    print(f"{'all':12s} {len(names):6d} {'':7s} {time.perf_counter() - t0:7.2f} "
          f"{len(groups):6d} {sum(map(len, groups)):9d}")
    across = [g for g in groups if len({where[i] for i in g}) > 1]
    print(f"groups spanning sets: {len(across)}")
    for g in across:
        print("  " + ", ".join(names[i] for i in g))
    sizes = np.bincount([len(g) for g in groups])
    print("group sizes: " + ", ".join(f"{n} x {k}" for k, n in enumerate(sizes) if n))

    print(f"\ndistance to the original{'':4s} {'n':>6s}  min     p1      median  p99     max")
    rng = np.random.default_rng(0)
    picks = []
    for s in args.sets:
        files = sorted(expand_inputs([args.hq / s], kinds=("image",)), key=str)
        picks += [files[i] for i in rng.choice(len(files), min(args.sample, len(files)),
                                               replace=False)]
    dist: dict[str, list[float]] = {k: [] for k in COPIES}
    for f in picks:
        img = read_image_array(f)
        s0 = signature(img)
        for k, copy in COPIES.items():
            dist[k].append(float(np.linalg.norm(signature(copy(img)) - s0)))
    for k, d in dist.items():
        print(_row(k, np.array(d)))
    london = sorted((args.hq / "london512").glob("*.jpg"))
    if london:
        sig = file_signatures(london)
        ids = [re.match(r"[ns]_(\d+)", f.name).group(1) for f in london]
        d = np.linalg.norm(sig[:, None] - sig[None], axis=-1)
        i, j = np.triu_indices(len(london), 1)
        same = np.array([ids[a] == ids[b] for a, b in zip(i, j, strict=True)])
        print(_row("london: one person, 2 photos", d[i, j][same]))
        print(_row("london: different people", d[i, j][~same]))


if __name__ == "__main__":
    main()
