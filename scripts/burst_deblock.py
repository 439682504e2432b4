"""Experiment (issue 17): does removing each frame's JPEG artefacts help burst fusion?

``train``: a DnCNN (KAIR's layout, ``act_mode`` R: 10 convs of 32 channels, output ``x -
model(x)``; spandrel loads it) learns to give back a 64 px LR frame as it was before its JPEG:
UTKFace faces (3,000, none of ``utk-val``/``utk-test``) at 256 px, shifted up to 4 px and turned
up to 3 degrees, Gaussian blur sigma 0.8-2.5, x4 bicubic down, Gaussian noise sigma 0-12
levels, JPEG quality 25-90; target: the same frame before JPEG (its noise kept, so that fusion
still averages it). MSE, Adam 1e-3, batch 16, one thread, ``--minutes``.

``eval``: benchmarks/multiframe.py's bursts (the 10 ffhq512 faces, 8 frames, rotation 2,
noise 8, JPEG 40) with the frames deblocked before fusion and back-projection (``all``),
before back-projection only (``bp``), before fusion only (``in``); PSNR-Y against the HR face,
and the LR frames' PSNR to their pre-JPEG selves with and without the DnCNN.

    python scripts/burst_deblock.py train runs/deblock --minutes 50
    python scripts/burst_deblock.py eval runs/deblock/dncnn.pt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


class DnCNN(nn.Module):
    """KAIR's DnCNN, act_mode R: conv + ReLU, (nb - 2) x (conv + ReLU), conv; x - model(x)."""

    def __init__(self, nc: int = 32, nb: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, nc, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nc, nc, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, 3, 3, 1, 1))
        self.model = nn.Sequential(*layers)
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)


def frame(hr: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(JPEG'd LR frame, the same frame before JPEG on the 8-bit grid) of a 256 px face."""
    from facesr.degrade.jpeg import jpeg_roundtrip

    dx, dy = rng.uniform(-4, 4, 2)
    m = cv2.getRotationMatrix2D((128.0, 128.0), float(rng.uniform(-3, 3)), 1.0)
    m = m.astype(np.float32)
    m[:, 2] += (dx, dy)
    img = cv2.warpAffine(hr, m, (256, 256), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT101)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.8, 2.5)))
    lr = cv2.resize(img, (64, 64), interpolation=cv2.INTER_CUBIC)
    lr = lr + rng.normal(0, rng.uniform(0, 12) / 255, lr.shape).astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(lr.clip(0, 1))).permute(2, 0, 1)
    return jpeg_roundtrip(t, int(rng.integers(25, 91))), (t * 255 + 0.5).floor() / 255


def train(out: Path, minutes: float, seed: int) -> None:
    from utk_faces import utk_training_faces

    rng = np.random.default_rng(seed)
    hrs = [cv2.resize(cv2.imread(str(p))[..., ::-1], (256, 256), interpolation=cv2.INTER_AREA)
           for p in utk_training_faces(3000, rng)]
    print(f"{len(hrs)} faces", flush=True)
    torch.manual_seed(seed)
    net = DnCNN()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out.mkdir(parents=True, exist_ok=True)
    t0, it, hist = time.time(), 0, []
    while time.time() - t0 < minutes * 60:
        xs, ys = zip(*(frame(hrs[i].astype(np.float32) / 255, rng)
                       for i in rng.integers(0, len(hrs), 16)), strict=True)
        x, y = torch.stack(xs), torch.stack(ys)
        loss = F.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        hist.append((loss.item(), F.mse_loss(x, y).item()))
        if it % 100 == 0:
            a, b = np.mean(hist[-100:], axis=0)
            print(f"it {it} {time.time() - t0:.0f} s: {10 * np.log10(b / a):+.2f} dB over the "
                  "JPEG'd frame", flush=True)
            torch.save(net.state_dict(), out / "dncnn.pt")
    torch.save(net.state_dict(), out / "dncnn.pt")
    print(f"{it} iterations -> {out / 'dncnn.pt'}")


def evaluate(weights: Path, seed: int) -> None:
    import multiframe as mf

    import facesr
    from facesr.metrics.fullref import psnr
    from facesr.models import zoo

    net = zoo.load("facesr-default")[0]
    db = DnCNN()
    db.load_state_dict(torch.load(weights, weights_only=True))
    db.eval()
    rows: dict[str, list[float]] = {}
    rng = np.random.default_rng(seed)
    for f in mf._faces(mf.DATA, 10):
        hr, jp, pre = mf.with_pre_jpeg(f, 8, rng, 2.0)
        with torch.no_grad():
            de = [db(x[None])[0].clamp(0, 1) for x in jp]
        got = {"LR frame: JPEG'd": (jp[0], pre[0]), "LR frame: deblocked": (de[0], pre[0]),
               "single": (facesr.upscale_face(jp[0], net), hr),
               "burst": (mf.burst_onto(jp, jp, net), hr),
               "burst, all deblocked": (mf.burst_onto(de, de, net), hr),
               "burst, bp deblocked": (mf.burst_onto(jp, de, net), hr),
               "burst, in deblocked": (mf.burst_onto(de, jp, net), hr)}
        for k, (a, b) in got.items():
            rows.setdefault(k, []).append(float(psnr(a.clamp(0, 1)[None], b[None],
                                                     crop_border=4 if "LR" not in k else 0)[0]))
    base = statistics.mean(rows["single"])
    print("| what | PSNR-Y (dB) | vs single |\n|---|---|---|")
    for k, v in rows.items():
        mean = statistics.mean(v)
        print(f"| {k} | {mean:.2f} | {'' if 'LR' in k else f'{mean - base:+.2f}'} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("out", type=Path)
    t.add_argument("--minutes", type=float, default=50.0)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval")
    e.add_argument("weights", type=Path)
    e.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.cmd == "train":
        train(a.out, a.minutes, a.seed)
    else:
        evaluate(a.weights, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
