"""A side-by-side picture from a `facesr evaluate synthetic` folder: for each chosen image, the
LR input (nearest-neighbour x4), each method's output and the HR reference, cropped to the
face's centre and zoomed (nearest) so single pixels can be judged.

    python scripts/side_by_side.py eval/sharp-test --methods bicubic,facesr-default,v3 \
        --images london512_n_002_03,london512_s_003_03 --out side_by_side.png

Rows are images, columns LR | methods... | HR, each labelled. A `facesr evaluate real` folder
(real low-quality faces, no reference) gives the same picture without the HR column.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def crop_zoom(img: np.ndarray, frac: float, zoom: int) -> np.ndarray:
    """The central ``frac`` of the image (the face of an aligned crop), zoomed ``zoom`` times."""
    h, w = img.shape[:2]
    ch, cw = round(h * frac), round(w * frac)
    y, x = (h - ch) // 2, (w - cw) // 2
    part = img[y:y + ch, x:x + cw]
    return cv2.resize(part, (cw * zoom, ch * zoom), interpolation=cv2.INTER_NEAREST)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="an evaluate synthetic output folder")
    ap.add_argument("--methods", required=True, help="comma-separated method folders")
    ap.add_argument("--images", required=True, help="comma-separated image names")
    ap.add_argument("--labels", help="comma-separated column labels for the methods")
    ap.add_argument("--frac", type=float, default=0.5, help="central share kept (default 0.5)")
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    names = args.labels.split(",") if args.labels else methods
    rows = []
    for image in (i for i in args.images.split(",") if i):
        hr_file = args.folder / "images" / "hr" / f"{image}.png"
        hr = cv2.imread(str(hr_file), cv2.IMREAD_COLOR) if hr_file.is_file() else None
        lr = cv2.imread(str(args.folder / "images" / "lr" / f"{image}.png"), cv2.IMREAD_COLOR)
        if lr is None or (hr is None and (args.folder / "images" / "hr").is_dir()):
            raise SystemExit(f"{image}: no LR/HR pair in {args.folder}/images")
        lr4 = cv2.resize(lr, (lr.shape[1] * 4, lr.shape[0] * 4), interpolation=cv2.INTER_NEAREST)
        tiles = [label(crop_zoom(lr4, args.frac, args.zoom), "LR input")]
        for m, name in zip(methods, names, strict=True):
            out = cv2.imread(str(args.folder / "images" / m / f"{image}.png"), cv2.IMREAD_COLOR)
            if out is None:
                raise SystemExit(f"{image}: no output of {m} in {args.folder}/images/{m}")
            tiles.append(label(crop_zoom(out, args.frac, args.zoom), name))
        if hr is not None:
            tiles.append(label(crop_zoom(hr, args.frac, args.zoom), "HR reference"))
        rows.append(np.hstack(tiles))
    width = max(r.shape[1] for r in rows)  # real faces differ in size: pad rows to the widest
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    params = ([cv2.IMWRITE_JPEG_QUALITY, 95] if args.out.suffix.lower() in (".jpg", ".jpeg")
              else [cv2.IMWRITE_PNG_COMPRESSION, 9])  # .jpg: smaller, for large real crops
    cv2.imwrite(str(args.out), np.vstack(rows), params)
    print(f"wrote {args.out}: {len(rows)} faces x {len(tiles)} columns")


if __name__ == "__main__":
    main()
