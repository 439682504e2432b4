"""Burst fusion vs single-frame x4 on synthetic bursts of sharp faces (issue 17).

Every face (``--data``, default ../shared/data/faces_hq/ffhq512, resized to 256 px HR) becomes
a burst of ``--frames`` LR crops: the HR face shifted by a random sub-pixel amount (frame 0,
the reference, unshifted; up to +-1 LR px), Gaussian blur sigma 1.5 HR px, x4 bicubic down
(64 px), Gaussian noise sigma 8/255, JPEG quality 40, each frame its own noise and JPEG
(``--noise`` and ``--jpeg`` change them; 0 leaves one out, to see which limits the fusion).
Methods, all scored against the reference's HR face (PSNR on Y, BT.601, 4 px border cropped):

- ``bicubic``: the reference crop upscaled x4 bicubic;
- ``single``: ``facesr.upscale_face`` of the reference crop;
- ``burst-mean``: plain mean of the ECC-aligned crops (no rejection, no outlier clipping),
  then the model: the first try of issue 17;
- ``burst-refine0``: ``facesr.upscale_burst(refine=0)`` (ECC, rejection, robust mean, then
  the model);
- ``burst``: ``facesr.upscale_burst`` as it is by default (the above, then ``REFINE``
  iterations of back-projection onto the used crops);
- ``ibp``: ``burst-refine0``, then 1..``--ibp`` iterations of
  ``facesr.infer.burst.back_project`` (``--step``, ``--sigma``, ``--down``), each scored
  (``ibp1``..``ibpK``); the time of ``ibpK`` includes the model's.
- ``oracle-in``, ``oracle-bp``, ``oracle-both``: where the frames' JPEG costs ``burst``
  (oracles, not methods: they see each frame as it was before JPEG, with the same noise):
  ``burst`` with the model's input fused from those frames, with back-projection onto them,
  or both.

The last column counts the faces where a method beats ``burst-refine0`` (``burst`` when
that is not run).

    python benchmarks/multiframe.py --faces 10 --frames 8
    python benchmarks/multiframe.py --sweep 1,4,8,16 --rotate 2 --weights ../shared/weights

``--sweep N1,N2,...``: the issue's table instead: bicubic, single-frame and ``upscale_burst``
(what ``facesr upscale --fuse N`` runs) on the first N frames of each burst, with PSNR-Y,
LPIPS (with ``--weights``), the identity metrics where the ``identity`` extra is installed
(face-ID distance to the HR face, share judged the same person) and the time per face.
``--rotate D``: every frame but the reference also turned by up to +-D degrees.
    python benchmarks/multiframe.py --faces 10 --frames 8 --methods single,burst-refine0,ibp
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import facesr
from facesr.data.inputs import hq_files
from facesr.degrade.jpeg import jpeg_roundtrip
from facesr.infer.burst import REFINE, BurstResult, back_project, fuse
from facesr.io import read_image
from facesr.metrics.fullref import psnr
from facesr.models import zoo

NOISE, JPEG = 8.0, 40  # per frame: Gaussian noise sigma (levels), JPEG quality
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "faces_hq" / "ffhq512"


def burst(hr: np.ndarray, frames: int, rng: np.random.Generator, rotate: float = 0.0,
          background: np.ndarray | None = None, *, noise: float = NOISE,
          jpeg: int = JPEG) -> list[torch.Tensor]:
    """LR crops (3, 64, 64) of ``hr`` (256, 256, 3) float32, frame 0 unshifted (another square
    size S, a multiple of 4, gives (3, S/4, S/4) crops, the same shifts and blur in HR px).

    ``background`` (256, 256, 3): a static scene behind the face: each frame is the moved face,
    cut out by a soft ellipse (:func:`face_alpha`), over the unmoved background, as in a fixed
    crop box of a video whose face moves and whose scene does not."""
    out = []
    size = hr.shape[0]
    if background is not None and size != 256:
        raise ValueError(f"a background needs a 256 px face, not {size} px")
    alpha = None if background is None else face_alpha()
    for i in range(frames):
        dx, dy = (0.0, 0.0) if i == 0 else rng.uniform(-4, 4, 2)  # HR px
        deg = 0.0 if i == 0 or not rotate else float(rng.uniform(-rotate, rotate))
        m = cv2.getRotationMatrix2D((size / 2, size / 2), deg, 1.0).astype(np.float32)
        m[:, 2] += (dx, dy)
        img = cv2.warpAffine(hr, m, (size, size), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REFLECT101)
        if alpha is not None:
            a = cv2.warpAffine(alpha, m, (256, 256), flags=cv2.INTER_LINEAR)[..., None]
            img = a * img + (1 - a) * background
        img = cv2.GaussianBlur(img, (0, 0), 1.5)
        lr = cv2.resize(img, (size // 4, size // 4), interpolation=cv2.INTER_CUBIC)
        if noise:
            lr = lr + rng.normal(0, noise / 255, lr.shape).astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(lr.clip(0, 1))).permute(2, 0, 1)
        out.append(jpeg_roundtrip(t, jpeg) if jpeg else t)
    return out


def with_pre_jpeg(path: Path, frames: int, rng: np.random.Generator, rotate: float,
                  background: np.ndarray | None = None, *, noise: float = NOISE,
                  jpeg: int = JPEG) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """:func:`hr_and_burst`, plus the same frames as they were before their JPEG (the same
    draws, from a copy of ``rng``; ``rng`` advances as in :func:`hr_and_burst` alone)."""
    twin = copy.deepcopy(rng)
    hr, crops = hr_and_burst(path, frames, rng, rotate, background, noise=noise, jpeg=jpeg)
    pre = hr_and_burst(path, frames, twin, rotate, background, noise=noise, jpeg=0)[1]
    return hr, crops, pre


def burst_onto(src: list[torch.Tensor], data: list[torch.Tensor], net: torch.nn.Module,
               burst_model: torch.nn.Module | None = None,
               res: BurstResult | None = None) -> torch.Tensor:
    """``upscale_burst`` of ``src`` with its back-projection made onto ``data`` instead (the
    same frames otherwise processed, e.g. before their JPEG, or deblocked). ``res``: that
    ``upscale_burst(src, refine=0)``, when already made."""
    if res is None:
        res = facesr.upscale_burst(src, model=net, burst_model=burst_model, refine=0)
    return back_project(res.image, [data[i] for i, _, _ in res.views],
                        [w for _, w, _ in res.views], weights=[wt for _, _, wt in res.views],
                        iterations=REFINE)[-1]


def face_alpha(side: int = 256) -> np.ndarray:
    """A soft ellipse (side, side) float32 over the face and hair of an aligned face crop:
    radii 0.34 x 0.44 of the side around the centre, a 12% feather."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    r = np.sqrt((x / 0.34) ** 2 + (y / 0.44) ** 2)
    return np.clip((1.0 - r) / 0.12, 0.0, 1.0).astype(np.float32)


def backgrounds(video: Path, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random 256 px crops (float32 RGB) of the first frame of ``video``."""
    from facesr.io import iter_video_frames

    frame = next(iter_video_frames(video))[1]
    h, w = frame.shape[:2]
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, h - 256 + 1)), int(rng.integers(0, w - 256 + 1))
        out.append(np.ascontiguousarray(frame[y:y + 256, x:x + 256], np.float32))
    return out


def hr_and_burst(path: Path, frames: int, rng: np.random.Generator, rotate: float,
                 background: np.ndarray | None = None, *, noise: float = NOISE,
                 jpeg: int = JPEG) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The 256 px HR reference of ``path`` (with ``background``: the face over it, as frame 0
    shows it) and ``frames`` degraded LR crops of it (:func:`burst`)."""
    hr = F.interpolate(read_image(path)[None], size=(256, 256), mode="area")[0]
    arr = hr.permute(1, 2, 0).numpy().copy()
    crops = burst(arr, frames, rng, rotate, background, noise=noise, jpeg=jpeg)
    if background is not None:
        a = face_alpha()[..., None]
        hr = torch.from_numpy(np.ascontiguousarray(a * arr + (1 - a) * background)).permute(2, 0, 1)
    return hr, crops


def _faces(data: Path, n: int) -> list[Path]:
    """The first ``n`` faces of a folder (sorted .png, as before lists existed) or list."""
    if data.is_dir() and any(data.glob("*.png")):
        return sorted(data.glob("*.png"))[:n]
    return hq_files([data])[:n]


def _scenes(args: argparse.Namespace, n: int) -> list[np.ndarray | None]:
    """--background's crops, one per face (their own seed: the bursts stay those without)."""
    if args.background is None:
        return [None] * n
    return backgrounds(args.background, n, np.random.default_rng([args.seed, 1]))


def _burst_model(args: argparse.Namespace, name: str, net: torch.nn.Module
                 ) -> tuple[str, torch.nn.Module]:
    """(label, network) for fused crops: --burst-model, else the model itself (``name``,
    ``net``)."""
    if args.burst_model:
        return args.burst_model, zoo.load(args.burst_model)[0]
    return name, net


def bicubic(crop: torch.Tensor) -> torch.Tensor:
    """x4 bicubic of one LR crop, clamped to [0, 1]."""
    return F.interpolate(crop[None], scale_factor=4, mode="bicubic",
                         align_corners=False)[0].clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=10)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--data", type=Path, default=DATA,
                    help="a folder of faces or a .txt list (configs/splits/sharp-val.txt)")
    ap.add_argument("--model", default=None, help="default: facesr-default (zoo default)")
    ap.add_argument("--burst-model", default=None,
                    help="the model for fused crops (upscale_burst's burst_model), e.g. a "
                    "run of configs/cpu-burst.yaml; default: --model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="bicubic,single,burst-mean,burst-refine0,burst",
                    help="comma-separated subset of bicubic,single,burst-mean,burst-refine0,"
                    "burst,ibp,oracle-in,oracle-bp,oracle-both")
    ap.add_argument("--ibp", type=int, default=5, help="ibp: back-projection iterations "
                    "after upscale_burst, each scored (ibp1..ibpK)")
    ap.add_argument("--step", type=float, default=0.5, help="ibp step size")
    ap.add_argument("--sigma", type=float, default=1.5, help="ibp blur (HR px)")
    ap.add_argument("--down", default="area", choices=("cubic", "area"), help="ibp downscale")
    ap.add_argument("--sweep", default=None, metavar="N1,N2,...",
                    help="the table per number of frames (see the module docs)")
    ap.add_argument("--rotate", type=float, default=0.0, help="max rotation (degrees)")
    ap.add_argument("--plain", action="store_true",
                    help="--sweep: fuse with the plain mean of whole-crop alignments "
                    "(upscale_burst(robust=False), the fusion before candidate warps)")
    ap.add_argument("--background", type=Path, default=None, metavar="VIDEO",
                    help="put each face over a static scene: a random 256 px crop of this "
                    "video's first frame (e.g. ../shared/data/video/pets_vtest_768x576.avi)")
    ap.add_argument("--noise", type=float, default=NOISE,
                    help="Gaussian noise sigma per frame, in levels (0: none)")
    ap.add_argument("--jpeg", type=int, default=JPEG, help="JPEG quality per frame (0: none)")
    ap.add_argument("--weights", type=Path, default=None, help="metric weights (LPIPS)")
    args = ap.parse_args()
    if args.sweep:
        return sweep(args)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    name = args.model or zoo.default_model_name()
    net = zoo.load(name)[0]
    bname, bnet = _burst_model(args, name, net)
    files = _faces(args.data, args.faces)
    scenes = _scenes(args, len(files))
    methods = tuple(args.methods.split(","))
    names = [m for m in methods if m != "ibp"]
    if "ibp" in methods:
        names += [f"ibp{k}" for k in range(1, args.ibp + 1)]
    scores: dict[str, list[float]] = {m: [] for m in names}
    times: dict[str, list[float]] = {m: [] for m in names}
    ecc, rejected = [], 0
    for f, scene in zip(files, scenes, strict=True):
        if any(m.startswith("oracle-") for m in methods):
            hr, crops, pre = with_pre_jpeg(f, args.frames, rng, args.rotate, scene,
                                           noise=args.noise, jpeg=args.jpeg)
        else:
            hr, crops = hr_and_burst(f, args.frames, rng, args.rotate, scene, noise=args.noise,
                                     jpeg=args.jpeg)
        for m in methods:
            t0 = time.perf_counter()
            if m == "bicubic":
                sr = bicubic(crops[0])
            elif m == "single":
                sr = facesr.upscale_face(crops[0], net)
            elif m == "burst-mean":
                fused = fuse(crops, 0, min_score=-1.0, robust=False)[0]
                sr = facesr.upscale_face(fused, bnet)
            elif m in ("burst", "burst-refine0"):
                res = facesr.upscale_burst(crops, model=net, burst_model=bnet,
                                           **({"refine": 0} if m == "burst-refine0" else {}))
                sr = res.image
                if m == "burst":
                    ecc += [s for i, s in enumerate(res.scores) if i and s is not None]
                    rejected += len(res.rejected)
            elif m in ("oracle-in", "oracle-bp", "oracle-both"):
                sr = burst_onto(pre if m != "oracle-bp" else crops,
                                pre if m != "oracle-in" else crops, net, bnet)
            elif m == "ibp":
                res = facesr.upscale_burst(crops, model=net, burst_model=bnet, refine=0)
                t1 = time.perf_counter() - t0
                t0 = time.perf_counter()
                outs = back_project(res.image, [crops[i] for i, _, _ in res.views],
                                    [w for _, w, _ in res.views],
                                    weights=[wt for _, _, wt in res.views], iterations=args.ibp,
                                    step=args.step, sigma=args.sigma, down=args.down)
                per = (time.perf_counter() - t0) / args.ibp
                for k, sr in enumerate(outs, 1):
                    times[f"ibp{k}"].append(t1 + k * per)
                    scores[f"ibp{k}"].append(float(psnr(sr[None], hr[None], crop_border=4)[0]))
                continue
            else:
                raise SystemExit(f"unknown method {m}")
            times[m].append(time.perf_counter() - t0)
            scores[m].append(float(psnr(sr[None], hr[None], crop_border=4)[0]))
    print(f"{len(files)} faces, {args.frames} frames, model {name}, fused crops {bname}\n")
    base = "single" if "single" in scores else names[0]
    single = statistics.mean(scores[base])
    ref = next((m for m in ("burst-refine0", "burst") if m in scores), base)
    print(f"| method | PSNR-Y (dB) | vs {base} | time / face (s) | faces better than {ref} |"
          "\n|---|---|---|---|---|")
    for m in names:
        mean = statistics.mean(scores[m])
        wins = sum(a > b for a, b in zip(scores[m], scores[ref], strict=True))
        print(f"| {m} | {mean:.2f} | {mean - single:+.2f} | {statistics.mean(times[m]):.2f} "
              f"| {wins}/{len(files)} |")
    if ecc:
        q = np.percentile(ecc, [0, 5, 50])
        print(f"\nECC scores of non-reference frames: min {q[0]:.3f}, 5% {q[1]:.3f}, "
              f"median {q[2]:.3f}; frames rejected: {rejected} of {len(ecc)}")


def sweep(args: argparse.Namespace) -> None:
    """bicubic, single and upscale_burst on the first N frames, for each N of --sweep."""
    from facesr.eval.scoring import MetricLoadError, MetricSet, identity_available

    ns = [int(n) for n in args.sweep.split(",")]
    rng = np.random.default_rng(args.seed)
    name = args.model or zoo.default_model_name()
    net = zoo.load(name)[0]
    metrics = ["psnr"]
    for extra in (["lpips"], ["identity", "identity_same"] if identity_available() else []):
        if not extra:
            continue
        try:
            MetricSet.load(extra, weights_dir=args.weights)
            metrics += extra
        except MetricLoadError as e:
            print(f"left out: {e}")
    scorer = MetricSet.load(metrics, weights_dir=args.weights, crop_border=4)
    rows = ["bicubic", "single", *[f"fuse {n}" for n in ns]]
    got: dict[str, dict[str, list[float]]] = {r: {m: [] for m in metrics} for r in rows}
    times: dict[str, list[float]] = {r: [] for r in rows}
    files = _faces(args.data, args.faces)
    bname, bnet = _burst_model(args, name, net)
    scenes = _scenes(args, len(files))
    for f, scene in zip(files, scenes, strict=True):
        hr, crops = hr_and_burst(f, max(ns), rng, args.rotate, scene, noise=args.noise,
                                 jpeg=args.jpeg)
        for r in rows:
            t0 = time.perf_counter()
            if r == "bicubic":
                sr = bicubic(crops[0])
            elif r == "single":
                sr = facesr.upscale_face(crops[0], net)
            else:
                sr = facesr.upscale_burst(crops[: int(r.split()[1])], model=net,
                                          burst_model=bnet, robust=not args.plain).image
            times[r].append(time.perf_counter() - t0)
            scores, _ = scorer.score(sr.float(), hr)
            for m in metrics:
                if scores.get(m) is not None:
                    got[r][m].append(float(scores[m]))
    print(f"{len(files)} faces of {args.data.name}, model {name}, fused crops {bname}"
          + (" (plain mean)" if args.plain else "") + ", "
          f"shifts up to 4 HR px, rotation up to {args.rotate:g} deg, blur 1.5, "
          f"noise {args.noise:g}, JPEG {args.jpeg or 'none'} per frame"
          + (f", over scenes of {args.background.name}" if args.background else "") + "\n")
    print("| method | " + " | ".join(metrics) + " | PSNR-Y vs single | time / face (s) |")
    print("|---|" + "---|" * (len(metrics) + 2))
    single = statistics.mean(got["single"]["psnr"])
    for r in rows:
        cells = [f"{statistics.mean(got[r][m]):.3f}" if got[r][m] else "-" for m in metrics]
        print(f"| {r} | " + " | ".join(cells) + f" | "
              f"{statistics.mean(got[r]['psnr']) - single:+.2f} | "
              f"{statistics.mean(times[r]):.2f} |")


if __name__ == "__main__":
    main()
