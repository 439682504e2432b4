"""Time x4 upscaling of a face crop and of a frame with five faces, per inference path.

Models (random weights: speed does not depend on the values): ESRGAN's RRDB-23 (64 features,
growth 32; the size of realesrgan-x4plus) and a small RRDBNet (6 blocks, 32 features, growth
16) standing in for the future shipped model. Tasks: one 92x92 face (``upscale_face``) and an
800x600 frame holding five ~46 px faces (``upscale_frame``: default detector, five 92 px crops
with margin 0.5, bicubic background and feathered paste-back). Paths:

- ``eager``: PyTorch eager, float32, ``torch.no_grad``, contiguous NCHW (the plain baseline;
  ``facesr.infer.pipeline.torch_runner``, what ``--backend torch`` runs);
- ``torch-tuned``: ``torch.inference_mode`` and channels_last memory layout;
- ``onnxruntime``: the ONNX export run by onnxruntime (ORT_ENABLE_ALL, all allowed cores);
- ``torch-bf16``: channels_last under ``torch.autocast("cpu", torch.bfloat16)`` (what
  ``facesr upscale --precision bf16`` runs; fast where the CPU has AVX512-BF16 or AMX; not
  bit-comparable with fp32; README: its difference with real weights).

Runs are interleaved (path after path, repeat after repeat) so that a busy machine slows every
path alike; the minimum over repeats is reported, after one warm-up face per path.

    python benchmarks/upscale.py                 # both models, several minutes on 2 cores
    python benchmarks/upscale.py --models small --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import platform
import time

import cv2
import numpy as np
import torch

from facesr.infer.faces import DEFAULT_DETECTOR, make_detector
from facesr.infer.onnx_backend import OnnxRunner, default_threads, export_onnx
from facesr.infer.pipeline import torch_runner, upscale_face, upscale_frame
from facesr.io import read_image_array, to_tensor
from facesr.models import RRDBNet

MODELS = {"rrdb23": {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
          "small": {"num_feat": 32, "num_block": 6, "num_grow_ch": 16}}


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


def tuned_runner(net: torch.nn.Module):
    copy = RRDBNet(**net.arch()).eval()
    copy.load_state_dict(net.state_dict())
    copy.to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return copy(x.contiguous(memory_format=torch.channels_last)).clone()

    return run


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def bench(name: str, repeats: int, face: torch.Tensor, frame: torch.Tensor, detector,
          threads: int) -> None:
    torch.manual_seed(0)
    net = RRDBNet(**MODELS[name]).eval().requires_grad_(False)
    t0 = time.perf_counter()
    ort = OnnxRunner(export_onnx(net), threads=threads)
    export_s = time.perf_counter() - t0
    bf16 = RRDBNet(**net.arch()).eval().requires_grad_(False)
    bf16.load_state_dict(net.state_dict())
    paths = {"eager": torch_runner(net), "torch-tuned": tuned_runner(net), "onnxruntime": ort,
             "torch-bf16": torch_runner(bf16, dtype=torch.bfloat16, channels_last=True)}
    ref = upscale_face(face, paths["eager"])
    for label, run in paths.items():  # warm-up, and the fp32 paths agree
        diff = (upscale_face(face, run) - ref).abs().max().item()
        assert label == "torch-bf16" or diff < 2e-3, f"{label} differs from eager by {diff}"
    times: dict[str, dict[str, list[float]]] = {p: {"face": [], "frame": []} for p in paths}
    stages: dict[str, dict[str, float]] = {p: {} for p in paths}  # fastest frame's breakdown
    n_faces = 0
    for _ in range(repeats):
        for label, run in paths.items():
            times[label]["face"].append(ms(lambda run=run: upscale_face(face, run)))
            split: dict[str, float] = {}
            t0 = time.perf_counter()
            result = upscale_frame(frame, run, detector, margin=0.5, timer=timer(split))
            times[label]["frame"].append(1000 * (time.perf_counter() - t0))
            if times[label]["frame"][-1] == min(times[label]["frame"]):
                stages[label] = split
            n_faces = len(result.faces)
    arch = MODELS[name]
    print(f"\n{name}: RRDBNet {arch['num_block']} blocks, {arch['num_feat']} features, growth "
          f"{arch['num_grow_ch']}; ONNX export {export_s:.1f} s; {n_faces} faces found in the "
          f"frame; min of {repeats} run(s)")
    print(f"{'task (ms)':<28}" + "".join(f"{p:>13}" for p in paths) + "   speed-up")
    for task, label in (("face", "92x92 face"), ("frame", "800x600 frame, 5 faces")):
        best = {p: min(times[p][task]) for p in paths}
        fp32 = min((p for p in paths if p != "torch-bf16"), key=best.get)
        print(f"{label:<28}" + "".join(f"{best[p]:>13.0f}" for p in paths)
              + f"   x{best['eager'] / best[fp32]:.2f} ({fp32} vs eager), "
              f"x{best['eager'] / best['torch-bf16']:.2f} (torch-bf16 vs eager)")
    for label, split in stages.items():
        print(f"  frame stages, {label}: " + ", ".join(f"{k} {v:.0f}" for k, v in split.items()))


def timer(split: dict[str, float]):
    @contextlib.contextmanager
    def timed(stage: str):
        t0 = time.perf_counter()
        yield
        split[stage] = split.get(stage, 0.0) + 1000 * (time.perf_counter() - t0)

    return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per path, min shown (default: 3 small, 1 rrdb23)")
    ap.add_argument("--threads", type=int, default=default_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(f"{platform.processor() or platform.machine()}, {args.threads} threads "
          f"(torch {torch.__version__}, onnxruntime {onnxruntime.__version__}); detection "
          f"({DEFAULT_DETECTOR}) is included in the frame times")
    face, frame = inputs()
    detector = make_detector(DEFAULT_DETECTOR)
    for name in args.models:
        repeats = args.repeats or {"small": 3, "rrdb23": 1}[name]
        bench(name, repeats, face, frame, detector, args.threads)


if __name__ == "__main__":
    main()
