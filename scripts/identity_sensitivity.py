"""How far a few imperceptible changes move dlib's face-ID distance (``facesr.losses.identity``).

For each face: blur it (Gaussian sigma 3 at 160 px), then take ``--steps`` signed-gradient
steps of one 8-bit level each towards the clean face's descriptor (through the torch port and
the clean face's chip), and report the distance before, after, and after a JPEG-90 round trip
of the changed image; then the same three with facesr's identity metric (dlib itself, its own
landmarks on each image: ``facesr.metrics.identity``).

    python scripts/identity_sensitivity.py --faces ../shared/data/faces_hq/london512 --n 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from facesr.degrade.jpeg import jpeg_roundtrip
from facesr.io import read_image_array, to_tensor, to_uint8
from facesr.losses.identity import DlibFaceID, face_chip_map, identity_loss
from facesr.metrics.identity import find_identity_models, load_identity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    net = DlibFaceID(find_identity_models()[1]).eval()
    metric = load_identity()
    rows = []
    for path in sorted(a.faces.glob("*.jpg"))[:a.n]:
        u8 = to_uint8(cv2.resize(read_image_array(path), (160, 160),
                                 interpolation=cv2.INTER_AREA))
        maps = torch.from_numpy(face_chip_map(u8, metric))[None]
        hr = to_tensor(u8.astype(np.float32) / 255)[None]
        blurred = to_tensor(cv2.GaussianBlur(u8, (0, 0), 3.0).astype(np.float32) / 255)[None]
        x = blurred
        for _ in range(a.steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(identity_loss(net, x, hr, maps), x)
            x = (x - grad.sign() / 255).clamp(0, 1).detach()
        back = jpeg_roundtrip(x, 90)
        ours = [identity_loss(net, y, hr, maps).item() for y in (blurred, x, back)]
        dlib_d = [metric.distance(y[0], hr[0]) for y in (blurred, x, back)]
        rows.append((*ours, *dlib_d))
        print(f"{path.name}: {ours[0]:.3f} -> {ours[1]:.3f} (JPEG 90: {ours[2]:.3f}); metric "
              f"{dlib_d[0]:.3f} -> {dlib_d[1]:.3f} (JPEG 90: {dlib_d[2]:.3f})")
    m = np.mean(rows, 0)
    print(f"mean over {len(rows)} faces: {m[0]:.3f} -> {m[1]:.3f} (JPEG 90: {m[2]:.3f}); "
          f"metric {m[3]:.3f} -> {m[4]:.3f} (JPEG 90: {m[5]:.3f}); no pixel changed by more "
          f"than {a.steps} levels")


if __name__ == "__main__":
    main()
