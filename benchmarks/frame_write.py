"""Frame mode's non-model work, old and new side by side, on the shared stills.

For each still: the x4 background and paste-back (old: PyTorch bicubic, then a copy of the
frame; new: OpenCV's bicubic, the same kernel, pasted in place) and the 8-bit PNG encoding of
the x4 frame (old: float HWC copies in NumPy; new: uint8 made in torch from the tensor).
Interleaved, medians of ``--repeat`` runs, 1 thread by default.

    OMP_NUM_THREADS=1 python benchmarks/frame_write.py --frames ../shared/data/frames
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facesr.infer.pipeline import paste_faces, resample
from facesr.io import encode_image, expand_inputs, read_image_array, to_array, to_tensor, to_uint8


def old_background(img: torch.Tensor) -> torch.Tensor:
    up = F.interpolate(img[None], scale_factor=4, mode="bicubic", align_corners=False)[0]
    return up.clamp(0, 1).clone()


def old_encode(frame: torch.Tensor) -> bytes:
    arr = np.ascontiguousarray(to_uint8(to_array(frame))[..., ::-1])
    ok, enc = cv2.imencode(".png", arr)
    return enc.tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=Path, default=Path("../shared/data/frames"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    totals = {"bg old": 0.0, "bg new": 0.0, "png old": 0.0, "png new": 0.0}
    print("| still | size | background+paste old / new (s) | PNG old / new (s) |")
    print("|---|---|---|---|")
    for f in expand_inputs([args.frames], kinds=("image",)):
        img = to_tensor(read_image_array(f))
        h, w = img.shape[-2:]
        crop = (w // 4, h // 4, w // 2, h // 2)  # one pasted crop, as a face would be
        sr = torch.rand(3, 4 * crop[3], 4 * crop[2])
        t: dict[str, list[float]] = {k: [] for k in totals}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            paste_faces(old_background(img), [(crop, sr)])
            t1 = time.perf_counter()
            frame = paste_faces(resample(img), [(crop, sr)], inplace=True)
            t2 = time.perf_counter()
            a = old_encode(frame)
            t3 = time.perf_counter()
            b = encode_image(frame, ".png")
            t4 = time.perf_counter()
            assert a == b, "the two encodings differ"
            for k, v in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                t[k].append(v)
        med = {k: statistics.median(v) for k, v in t.items()}
        for k in totals:
            totals[k] += med[k]
        print(f"| {f.name} | {w}x{h} | {med['bg old']:.2f} / {med['bg new']:.2f} | "
              f"{med['png old']:.2f} / {med['png new']:.2f} |")
    print(f"| all | | {totals['bg old']:.1f} / {totals['bg new']:.1f} "
          f"(x{totals['bg old'] / totals['bg new']:.2f}) | {totals['png old']:.1f} / "
          f"{totals['png new']:.1f} (x{totals['png old'] / totals['png new']:.2f}) |")


if __name__ == "__main__":
    main()
