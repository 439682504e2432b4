"""Seconds per 512x512 image of every registered metric (CPU by default).

    python benchmarks/metrics.py                        # all metrics, ../shared/weights
    python benchmarks/metrics.py --metrics lpips,dists --runs 5
    python benchmarks/metrics.py --weights ~/weights --device cuda

Scores scikit-image's 512x512 ``astronaut`` (public domain, carried by the package) against a
noisy, blurred copy of itself with one :class:`facesr.metrics.Scorer` per metric (weights are
loaded once, before timing), and prints the median of ``--runs`` timed calls after one
warm-up, per metric. A metric whose weights are not found prints "weights not available".
"""

from __future__ import annotations

import argparse
import importlib.resources
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facesr.metrics import METRICS, Scorer, WeightsUnavailableError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(distorted, reference): astronaut, and a Gaussian-blurred copy with noise sigma 5."""
    path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    ref = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    rng = np.random.default_rng(seed)
    dist = cv2.GaussianBlur(ref, (0, 0), 1.2) + rng.normal(0, 5 / 255, ref.shape)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()  # noqa: E731
    return to_t(np.clip(dist, 0, 1)), to_t(ref)


def time_metric(name: str, weights: Path, device: str, runs: int,
                pair: tuple[torch.Tensor, torch.Tensor]) -> str:
    """One table row: median seconds per image, or why there is none."""
    try:
        scorer = Scorer([name], weights_dir=weights, device=device)
    except WeightsUnavailableError:
        return "weights not available"
    except NotImplementedError:
        return "not implemented"
    dist, ref = pair
    value = scorer(dist, ref)[name]  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        scorer(dist, ref)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return f"{statistics.median(times):8.3f} s   (value {value:.4f})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=SHARED / "weights",
                    help="weight folder laid out like shared/weights")
    ap.add_argument("--metrics", default=",".join(METRICS),
                    help="comma-separated metric names (default: all registered)")
    ap.add_argument("--runs", type=int, default=3, help="timed calls per metric (median)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        ap.error(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    pair = test_pair()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device},"
          f" 512x512 image, median of {args.runs} runs, weights {args.weights}\n")
    print(f"{'metric':10s} {'time / image':>12s}")
    for n in names:
        print(f"{n:10s} {time_metric(n, args.weights, args.device, args.runs, pair)}",
              flush=True)


if __name__ == "__main__":
    main()
