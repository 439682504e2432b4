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

from facesr.io import read_image_array, to_tensor
from facesr.losses.identity import DlibFaceID, chip_affine, identity_loss
from facesr.metrics.identity import find_identity_models, load_identity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    import dlib

    torch.set_num_threads(1)
    landmarks, recognition = find_identity_models()
    net, sp = DlibFaceID(recognition).eval(), dlib.shape_predictor(str(landmarks))
    det = dlib.get_frontal_face_detector()
    metric = load_identity()
    rows = []
    for path in sorted(a.faces.glob("*.jpg"))[:a.n]:
        img = cv2.resize(read_image_array(path), (160, 160), interpolation=cv2.INTER_AREA)
        u8 = (img * 255 + 0.5).astype(np.uint8)
        found = det(u8, 1)
        if not found:
            continue
        shape = sp(u8, found[0])
        maps = torch.from_numpy(chip_affine([(p.x, p.y) for p in shape.parts()]))[None]
        hr = to_tensor(u8.astype(np.float32) / 255)[None]
        x = to_tensor(cv2.GaussianBlur(u8, (0, 0), 3.0).astype(np.float32) / 255)[None]
        before = identity_loss(net, x, hr, maps).item()
        for _ in range(a.steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(identity_loss(net, x, hr, maps), x)
            x = (x - grad.sign() / 255).clamp(0, 1).detach()
        after = identity_loss(net, x, hr, maps).item()
        changed = (x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", changed[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        back = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
        jpeg = identity_loss(net, to_tensor(back)[None], hr, maps).item()
        blurred = to_tensor(cv2.GaussianBlur(u8, (0, 0), 3.0).astype(np.float32) / 255)
        dlib_d = [metric.distance(y, hr[0]) for y in (blurred, x[0], to_tensor(back))]
        rows.append((before, after, jpeg, *dlib_d))
        print(f"{path.name}: {before:.3f} -> {after:.3f} (JPEG 90: {jpeg:.3f}); metric "
              f"{dlib_d[0]:.3f} -> {dlib_d[1]:.3f} (JPEG 90: {dlib_d[2]:.3f})")
    m = np.mean(rows, 0)
    print(f"mean over {len(rows)} faces: {m[0]:.3f} -> {m[1]:.3f} (JPEG 90: {m[2]:.3f}); "
          f"metric {m[3]:.3f} -> {m[4]:.3f} (JPEG 90: {m[5]:.3f}); no pixel changed by more "
          f"than {a.steps} levels")


if __name__ == "__main__":
    main()
