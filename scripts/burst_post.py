"""Experiment (issue 17): a network after back-projection, trained on what it puts back.

``upscale_burst``'s back-projection recovers real detail from the frames' sub-pixel shifts but
projects onto JPEG'd frames, and so puts their compression back (the oracles of
benchmarks/multiframe.py: back-projection onto the frames before their JPEG would give +2.00 dB
over single-frame instead of +0.96). A per-frame deblocker did not help (scripts/
burst_deblock.py). Here a small network sees the back-projected x4 face together with the
model's output before back-projection, and learns the remaining correction to the HR face:

- ``make``: bursts like the benchmark's (``multiframe.burst``: shifts up to 4 HR px, rotation
  up to 2 degrees, Gaussian blur 1.5, x4 bicubic down) but with 4-12 frames, noise sigma 0-12
  levels and JPEG quality 30-80 per burst, of the 92 sharp-train faces (256 px copies, 12
  bursts each; ``--sharp-bursts``) and 1,000 UTKFace faces outside ``utk-val``/``utk-test``
  (``--utk``, one burst each); for each: the HR face, ``upscale_burst(refine=0)``
  (facesr-default) and that after back-projection, as shipped, and the used frames on the
  reference grid with their fusion weights (``lr``/``lw``; files made before they were kept
  lack them). ``--shard i/k`` makes every k-th burst from the i-th (run two at once on two
  cores);
- ``val``: the same for the 60 sharp-val faces, one burst each (8 frames, noise 8, JPEG 40,
  the benchmark's setting): what ``train`` scores its checkpoints on;
- ``train``: :class:`Post` (pixel-unshuffle x4 to the LR grid, ``--blocks`` convs of 64
  channels (default 10), pixel-shuffle back; output: the back-projected face plus its
  correction), L1, Adam 2e-4, batch 16 of random 128 px HR crops (whole faces below that),
  one thread, ``--minutes``; every 250 iterations the validation PSNR-Y, and the best so far kept as
  ``best.pt``; ``--faces sharp|utk``: only the bursts of those faces, ``--limit N``: N of
  them; ``--stack C``: the network also sees the aligned frames (each through two convs of C
  channels, then their weighted mean over the frames), a learned fusion;
- ``eval``: benchmarks/multiframe.py's bursts (the 10 ffhq512 faces, 8 frames, rotation 2,
  noise 8, JPEG 40, seed 0: the same bursts as its table), single frame, ``burst`` as shipped
  and ``burst`` + the network; PSNR-Y against the HR face, and the gain over ``burst`` per
  source folder, also inside the benchmark's face ellipse. ``--data LIST --faces N``: other
  faces (a folder or a list) instead of the benchmark's.

    awk 'NR % 5 == 1' configs/splits/sharp-test.txt | sed "s#^../../../#$PWD/../#" > st5.txt
    python scripts/burst_post.py make runs/post/data --shard 0/2 &
    python scripts/burst_post.py make runs/post/data --shard 1/2
    python scripts/burst_post.py val runs/post/data
    python scripts/burst_post.py train runs/post --minutes 45
    python scripts/burst_post.py train runs/post4 --data runs/post/data --blocks 4 --minutes 28
    python scripts/burst_post.py train runs/post4u --data runs/post/data --blocks 4 --faces utk \
        --minutes 28
    python scripts/burst_post.py train runs/post4u250 --data runs/post/data --blocks 4 \
        --faces utk --limit 250 --minutes 28
    python scripts/burst_post.py train runs/post4s --data runs/post/data --blocks 4 \
        --faces sharp --minutes 28
    python scripts/burst_post.py make runs/post/utk6k --utk 6000 --sharp-bursts 0 --shard 0/2 &
    python scripts/burst_post.py make runs/post/utk6k --utk 6000 --sharp-bursts 0 --shard 1/2
    cp runs/post/data/val.npz runs/post/utk6k/
    python scripts/burst_post.py train runs/post4u6k --data runs/post/utk6k --blocks 4 --minutes 28
    python scripts/burst_post.py train runs/post10u6k --data runs/post/utk6k --minutes 45
    python scripts/burst_post.py make runs/post/utk2ks --utk 2000 --sharp-bursts 0 --shard 0/2 &
    python scripts/burst_post.py make runs/post/utk2ks --utk 2000 --sharp-bursts 0 --shard 1/2
    python scripts/burst_post.py val runs/post/utk2ks
    python scripts/burst_post.py train runs/post4s32 --data runs/post/utk2ks --blocks 4 \
        --stack 32 --minutes 28
    python scripts/burst_post.py train runs/post4u2k --data runs/post/utk2ks --blocks 4 --minutes 28
    python scripts/burst_post.py make runs/post/utk128 --utk 2000 --sharp-bursts 0 --utk-size 128
    cp runs/post/data/val.npz runs/post/utk128/
    python scripts/burst_post.py train runs/post4k128 --data runs/post/utk128 --blocks 4 \
        --minutes 28
    python scripts/burst_post.py eval runs/post4/best.pt
    python scripts/burst_post.py eval runs/post4/best.pt --data st5.txt --faces 61
    sed "s#^../../../#$PWD/../#" configs/splits/utk-test.txt > utkt.txt
    python scripts/burst_post.py eval runs/post4u6k/best.pt --data utkt.txt --faces 60

Measured (README, issue-17 section): over ``burst`` on the benchmark's faces +0.05 dB with
4 convs, +0.03 with 10, +0.09 with 4 trained on the UTKFace bursts only; +0.13 to +0.18 on
the alae512 and celebahq test faces; +0.90 / +1.06 on London test faces (the studio of the
training faces) against +0.25 without London training faces: a prior of its training faces;
with 250 of the UTKFace faces +0.03 on the benchmark, with the London faces only -0.12; with
6,000 UTKFace faces +0.08 (4 convs) / +0.09 (10): no more than with 1,000; on the utk-test
faces +0.38 (1,000, 4 convs), +0.39 (6,000, 4), +0.44 (6,000, 10). ``--stack 32`` (on 2,000
UTKFace bursts, ``runs/post/utk2ks``): the same validation PSNR-Y as without at equal
iterations, 2.8x slower; in 28 minutes +0.03 on the benchmark and +0.26 on utk-test, against
+0.09 and +0.38 without. ``make --utk-size 128`` (the same 2,000 UTKFace faces brought down to
128 px instead of up to 256: sharper per pixel, like the test faces): +0.17 on the benchmark,
+0.23 / +0.21 / +0.44 on alae512 / celebahq / London, against +0.09 and +0.16 / +0.15 / +0.23
at 256 px; 176 px +0.16, 96 px +0.14 on the benchmark; 6,000 faces at 128 px with 10 convs
(45 min) +0.21 on the benchmark (+1.17 over single-frame), +0.30 / +0.26 / +0.48; trained 25
min more (``--init``) +0.26 (+1.22 over single-frame).
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
SPLITS = ROOT / "configs" / "splits"
SHARP_BURSTS = 12  # ``make``'s bursts per sharp-train face; they come first, UTKFace's after


class Post(nn.Module):
    """(back-projected x4, model's x4) -> back-projected x4 + correction, on the LR grid."""

    def __init__(self, nf: int = 64, nb: int = 10, stack: int = 0) -> None:
        super().__init__()
        # ``stack`` > 0: also the aligned LR frames, each through two convs of ``stack``
        # channels (its frame, its difference to the reference, its weight), then their
        # weighted mean over the frames: a learned fusion, whatever the number of frames
        self.frame = None if not stack else nn.Sequential(
            nn.Conv2d(7, stack, 3, 1, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(stack, stack, 3, 1, 1), nn.LeakyReLU(0.2, True))
        layers: list[nn.Module] = [nn.Conv2d(6 * 16 + stack, nf, 3, 1, 1),
                                   nn.LeakyReLU(0.2, True)]
        for _ in range(nb - 2):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(nf, 3 * 16, 3, 1, 1))
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.body = nn.Sequential(*layers)

    def forward(self, bp: torch.Tensor, sr: torch.Tensor, lr: torch.Tensor | None = None,
                lw: torch.Tensor | None = None) -> torch.Tensor:
        """``lr`` (B, N, 3, h, w) aligned frames, the reference first; ``lw`` (B, N, 1, h, w)
        their weights (0 for padding)."""
        x = F.pixel_unshuffle(torch.cat([bp, sr], 1) - 0.5, 4)
        if self.frame is not None:
            b, n = lr.shape[:2]
            f = self.frame(torch.cat([lr - 0.5, lr - lr[:, :1], lw], 2).flatten(0, 1))
            f = f.unflatten(0, (b, n))
            x = torch.cat([x, (f * lw).sum(1) / lw.sum(1).clamp_min(1e-3)], 1)
        return bp + F.pixel_shuffle(self.body(x), 4)

    @classmethod
    def from_state(cls, state: dict) -> Post:
        stack = state["frame.0.weight"].shape[0] if "frame.0.weight" in state else 0
        net = cls(nb=sum(k.startswith("body.") and k.endswith(".weight") for k in state),
                  stack=stack)
        net.load_state_dict(state)
        return net


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255


def _hr(path: Path, size: int = 256) -> np.ndarray:
    img = cv2.imread(str(path))[..., ::-1]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _sample(hr: np.ndarray, frames: int, rng: np.random.Generator, noise: float, jpeg: int,
            net: nn.Module) -> tuple[np.ndarray, ...]:
    """(HR, model's x4 of the fused crop, that back-projected) as uint8 (256, 256, 3), and the
    aligned frames (MAX_FRAMES, 64, 64, 3) and their weights (MAX_FRAMES, 64, 64), uint8."""
    import multiframe as mf

    sr, bp, lr, lw = _pair(mf.burst(hr, frames, rng, 2.0, noise=noise, jpeg=jpeg), net)
    return ((hr * 255 + 0.5).astype(np.uint8), _u8(sr), _u8(bp),
            np.stack([_u8(f) for f in lr]), (lw[:, 0].numpy() * 255 + 0.5).astype(np.uint8))


MAX_FRAMES = 12


def _aligned(crops: list[torch.Tensor], res) -> tuple[torch.Tensor, torch.Tensor]:
    """Each used crop on the reference grid, its candidate views (``BurstResult.views``)
    merged with their weights: (MAX_FRAMES, 3, h, w) frames, the reference first, and
    (MAX_FRAMES, 1, h, w) weights; padding and pixels no view covers have weight 0."""
    from facesr.infer.burst import _warp

    ref = crops[res.used[0]].float()
    lr, lw = ref.new_zeros(MAX_FRAMES, *ref.shape), ref.new_zeros(MAX_FRAMES, 1, *ref.shape[1:])
    for n, i in enumerate(res.used[:MAX_FRAMES]):
        acc, ws = torch.zeros_like(ref), torch.zeros(ref.shape[1:])
        for j, w, wt in res.views:
            if j == i:
                t = torch.from_numpy(np.asarray(wt, np.float32))
                acc += torch.nan_to_num(_warp(crops[i].float(), w)) * t
                ws += t
        lr[n] = torch.where(ws > 0, acc / ws.clamp_min(1e-6), ref)
        lw[n, 0] = ws.clamp(0, 1)
    return lr, lw


def _pair(crops: list[torch.Tensor], net: nn.Module) -> tuple[torch.Tensor, ...]:
    """(``upscale_burst(refine=0)``, ``upscale_burst`` as shipped) of one burst, fused once,
    and its aligned frames and weights (:func:`_aligned`)."""
    import multiframe as mf

    import facesr

    res = facesr.upscale_burst(crops, model=net, refine=0)
    return (res.image, mf.burst_onto(crops, crops, net, res=res), *_aligned(crops, res))


def _save(out: Path, rows: list[tuple[np.ndarray, ...]], sharp: np.ndarray | None = None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    hr, sr, bp, lr, lw = (np.stack(c) for c in zip(*rows, strict=True))
    tmp = out.with_suffix(".tmp.npz")
    extra = {} if sharp is None else {"sharp": sharp}
    np.savez(tmp, hr=hr, sr=sr, bp=bp, lr=lr, lw=lw, **extra)
    tmp.replace(out)


def make(out: Path, shard: str, seed: int, utk: int, sharp_bursts: int, utk_size: int) -> None:
    from utk_faces import utk_training_faces

    from facesr.data.inputs import hq_files
    from facesr.models import zoo

    i, k = (int(v) for v in shard.split("/"))
    sharp = hq_files([SPLITS / "sharp-train.txt"])
    jobs = ([p for p in sharp for _ in range(sharp_bursts)]
            + utk_training_faces(utk, np.random.default_rng(seed)))
    net = zoo.load("facesr-default")[0]
    rows, t0 = [], time.time()
    mine = list(range(i, len(jobs), k))
    for n, j in enumerate(mine):
        rng = np.random.default_rng([seed, j])
        size = 256 if j < len(sharp) * sharp_bursts else utk_size
        rows.append(_sample(_hr(jobs[j], size), int(rng.integers(4, 13)), rng,
                            float(rng.uniform(0, 12)), int(rng.integers(30, 81)), net))
        if (n + 1) % 50 == 0:
            print(f"{n + 1}/{len(mine)} {time.time() - t0:.0f} s", flush=True)
    _save(out / f"train-{i}of{k}.npz", rows, np.array(mine) < len(sharp) * sharp_bursts)
    print(f"{len(rows)} bursts -> {out}")


def make_val(out: Path, seed: int) -> None:
    from facesr.data.inputs import hq_files
    from facesr.models import zoo

    net = zoo.load("facesr-default")[0]
    files = hq_files([SPLITS / "sharp-val.txt"])
    rng = np.random.default_rng([seed, 99])
    _save(out / "val.npz", [_sample(_hr(f), 8, rng, 8.0, 40, net) for f in files])
    print(f"{len(files)} val bursts -> {out}")


def _psnr_y(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    from facesr.metrics.fullref import psnr

    return [float(v) for v in psnr(a.clamp(0, 1), b, crop_border=4)]


def _from_sharp(path: Path, n: int) -> np.ndarray:
    """Which of the ``n`` bursts of ``make``'s ``train-IofK.npz`` are of sharp-train faces, for
    files made before ``make`` saved it (``--sharp-bursts 12``, its default)."""
    from facesr.data.inputs import hq_files

    i, k = (int(v) for v in path.stem.removeprefix("train-").split("of"))
    sharp = len(hq_files([SPLITS / "sharp-train.txt"])) * SHARP_BURSTS
    return np.arange(i, i + k * n, k) < sharp


def _frames(lr: np.ndarray, lw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``make``'s uint8 (B, N, h, w, 3) frames and (B, N, h, w) weights as the network's."""
    return (torch.from_numpy(lr).permute(0, 1, 4, 2, 3).float() / 255,
            torch.from_numpy(lw)[:, :, None].float() / 255)


def train(out: Path, data: Path, minutes: float, seed: int, blocks: int, faces: str,
          limit: int | None, stack: int, init: Path | None = None) -> None:
    files = sorted(data.glob("train-*.npz"))
    parts = [np.load(p) for p in files]
    keep = [np.ones(len(p["hr"]), bool) if faces == "all" else
            (p["sharp"] if "sharp" in p else _from_sharp(f, len(p["hr"]))) == (faces == "sharp")
            for f, p in zip(files, parts, strict=True)]
    names = ("hr", "sr", "bp") + (("lr", "lw") if stack else ())
    hr, sr, bp, *st = (np.concatenate([p[k][m] for p, m in zip(parts, keep, strict=True)])
                       for k in names)
    if limit:  # a seeded choice, so that the shards stay mixed
        pick = np.sort(np.random.default_rng([seed, 7]).choice(len(hr), limit, replace=False))
        hr, sr, bp, *st = (a[pick] for a in (hr, sr, bp, *st))
    val = np.load(data / "val.npz")
    vhr, vsr, vbp = (_t(val[k]) for k in ("hr", "sr", "bp"))
    vst = _frames(val["lr"], val["lw"]) if stack else ()
    print(f"{len(hr)} training bursts, {len(vhr)} val; val back-projected "
          f"{statistics.mean(_psnr_y(vbp, vhr)):.3f} dB", flush=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Post(nb=blocks, stack=stack) if init is None else Post.from_state(torch.load(init))
    opt = torch.optim.Adam(net.parameters(), 2e-4)
    out.mkdir(parents=True, exist_ok=True)
    t0, it, best, hist = time.time(), 0, -1.0, []
    crop = min(128, hr.shape[1])  # HR px; bursts of faces brought below 128 px are used whole
    while time.time() - t0 < minutes * 60:
        idx = rng.integers(0, len(hr), 16)
        y, x = (int(v) * 4 for v in rng.integers(0, (hr.shape[1] - crop) // 4 + 1, 2))
        sl = (idx, slice(y, y + crop), slice(x, x + crop))
        h, s, b = _t(hr[sl]), _t(sr[sl]), _t(bp[sl])
        lsl = (idx, slice(None), slice(y // 4, (y + crop) // 4), slice(x // 4, (x + crop) // 4))
        f = _frames(st[0][lsl], st[1][lsl]) if stack else ()
        if rng.random() < 0.5:  # flips keep the LR grid (crops start on multiples of 4)
            h, s, b, *f = (v.flip(-1) for v in (h, s, b, *f))
        loss = F.l1_loss(net(b, s, *f), h)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        hist.append((loss.item(), F.l1_loss(b, h).item()))
        if it % 250 == 0:
            with torch.no_grad():
                net.eval()
                v = statistics.mean(_psnr_y(net(vbp, vsr, *vst), vhr))
                net.train()
            a, c = np.mean(hist[-250:], axis=0)
            mark = ""
            if v > best:
                best, mark = v, " (best)"
                torch.save(net.state_dict(), out / "best.pt")
            torch.save(net.state_dict(), out / "last.pt")
            print(f"it {it} {time.time() - t0:.0f} s: train L1 {a:.4f} (back-projected "
                  f"{c:.4f}); val PSNR-Y {v:.3f}{mark}", flush=True)
    print(f"{it} iterations; best val {best:.3f} dB -> {out / 'best.pt'}")


def _face_mse(img: torch.Tensor, hr: torch.Tensor) -> float:
    """MSE of Y (the PSNR's BT.601 luma, 0-255) inside the benchmark's face ellipse
    (``face_alpha`` > 0.5)."""
    import multiframe as mf

    from facesr.metrics.color import to_channels

    d = (to_channels(img.clamp(0, 1)[None], "y") - to_channels(hr[None], "y"))[0, 0]
    return float(d[torch.from_numpy(mf.face_alpha() > 0.5)].pow(2).mean())


def evaluate(weights: Path, seed: int, frames: int, data: Path | None, faces: int) -> None:
    import multiframe as mf

    import facesr
    from facesr.models import zoo

    net = zoo.load("facesr-default")[0]
    state = torch.load(weights, weights_only=True)
    post = Post.from_state(state)
    post.eval()
    rows: dict[str, list[float]] = {}
    rng = np.random.default_rng(seed)
    files = mf._faces(data or mf.DATA, faces)
    for f in files:
        hr, crops = mf.hr_and_burst(f, frames, rng, 2.0)
        sr, bp, lr, lw = _pair(crops, net)
        st = (lr[None], lw[None]) if post.frame is not None else ()
        with torch.no_grad():
            fixed = post(bp[None], sr[None], *st)[0]
        for k, img in (("single", facesr.upscale_face(crops[0], net)), ("burst, refine 0", sr),
                       ("burst", bp), ("burst + post", fixed)):
            rows.setdefault(k, []).append(_psnr_y(img[None], hr[None])[0])
            rows.setdefault(k + " (face)", []).append(_face_mse(img, hr))
    base = statistics.mean(rows["single"])
    print("| what | PSNR-Y (dB) | vs single | faces better than burst |\n|---|---|---|---|")
    for k, v in rows.items():
        if k.endswith("(face)"):
            continue
        wins = sum(a > b for a, b in zip(v, rows["burst"], strict=True))
        print(f"| {k} | {statistics.mean(v):.2f} | {statistics.mean(v) - base:+.2f} "
              f"| {wins}/{len(v)} |")
    print("\n| faces from | n | burst + post vs burst (dB) | better | inside the face ellipse "
          "(dB) |\n|---|---|---|---|---|")
    for src in sorted({f.parent.name for f in files}):
        mine = [f.parent.name == src for f in files]
        d = [a - b for m, a, b in zip(mine, rows["burst + post"], rows["burst"], strict=True) if m]
        e = [10 * np.log10(b / a) for m, a, b in zip(mine, rows["burst + post (face)"],
                                                      rows["burst (face)"], strict=True) if m]
        print(f"| {src} | {len(d)} | {statistics.mean(d):+.2f} | {sum(x > 0 for x in d)} "
              f"| {statistics.mean(e):+.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out", type=Path)
    m.add_argument("--shard", default="0/1")
    m.add_argument("--utk", type=int, default=1000, help="UTKFace faces, one burst each")
    m.add_argument("--utk-size", type=int, default=256,
                   help="UTKFace faces (200 px files) brought to S px: 256 upsamples them "
                        "(softer than the test faces), S < 200 downsamples them (sharper)")
    m.add_argument("--sharp-bursts", type=int, default=SHARP_BURSTS,
                   help="bursts of each sharp-train face (0: none)")
    v = sub.add_parser("val")
    v.add_argument("out", type=Path)
    t = sub.add_parser("train")
    t.add_argument("out", type=Path)
    t.add_argument("--data", type=Path, default=None, help="default: OUT/data")
    t.add_argument("--minutes", type=float, default=50.0)
    t.add_argument("--blocks", type=int, default=10, help="convolutions (receptive field: "
                   "2 x blocks + 1 LR px)")
    t.add_argument("--faces", choices=("all", "sharp", "utk"), default="all",
                   help="train on the bursts of these faces only")
    t.add_argument("--limit", type=int, default=None, help="only N of those bursts")
    t.add_argument("--init", type=Path, default=None,
                   help="go on from a network train saved (its own convolutions and --stack; "
                        "a fresh optimiser; --seed for another draw of crops)")
    t.add_argument("--stack", type=int, default=0, help="C > 0: also the aligned frames, "
                   "each through 2 convs of C channels, mean over frames (needs make's lr/lw)")
    e = sub.add_parser("eval")
    e.add_argument("weights", type=Path)
    e.add_argument("--frames", type=int, default=8)
    e.add_argument("--data", type=Path, default=None,
                   help="faces (folder or list) instead of the benchmark's ffhq512")
    e.add_argument("--faces", type=int, default=10)
    for p in (m, v, t, e):
        p.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.cmd == "make":
        if a.utk_size != 256 and a.sharp_bursts:
            m.error("--utk-size other than 256 needs --sharp-bursts 0 (one size per file)")
        if a.utk_size % 4 or a.utk_size < 64:
            m.error(f"--utk-size must be a multiple of 4, at least 64, not {a.utk_size}")
        make(a.out, a.shard, a.seed, a.utk, a.sharp_bursts, a.utk_size)
    elif a.cmd == "val":
        make_val(a.out, a.seed)
    elif a.cmd == "train":
        train(a.out, a.data or a.out / "data", a.minutes, a.seed, a.blocks, a.faces, a.limit,
              a.stack, a.init)
    else:
        evaluate(a.weights, a.seed, a.frames, a.data, a.faces)
    return 0


if __name__ == "__main__":
    sys.exit(main())
