"""Training iterations/s of the shipped configs (cpu-small, cpu-rrdb23-ft and paper).

The configs are `configs/cpu-small.yaml`, `configs/cpu-rrdb23-ft.yaml` and `configs/paper.yaml`.

    python benchmarks/train_step.py                          # cpu-small and paper, this CPU
    python benchmarks/train_step.py --config cpu-rrdb23-ft   # RRDB-23 fine-tune, bf16 on CPU
    python benchmarks/train_step.py --config cpu-small --iterations 40
    python benchmarks/train_step.py --config paper --device cuda --iterations 50   # on a GPU
    python benchmarks/train_step.py --random-images          # no decoding of real faces

Runs the real loop (``facesr.train.loop.train``) for a few iterations in a temporary run
folder, with the config's own model, batch, patch size, stage and losses, and prints
iterations/s (and HR images/s) over the iterations after the warm-up ones; the last timed
iteration includes writing the final checkpoint. Data: the config's ``data.hq`` faces when they
exist (run from the project root, next to ../shared), else random 256 px images; pools are
synthetic (25 px kernels, 32 px noise), so no pool files are needed. Validation, TensorBoard
and intermediate checkpoints are off. The paper config (GAN stage, RRDBNet-23, batch 16, 128 px,
LPIPS) takes tens of seconds per iteration on a 2-core CPU: by default it is timed over
``--paper-iterations`` = 2 (after 1 warm-up); stop with Ctrl-C whenever.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facesr.degrade.degradation import Pools
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.train.config import TrainConfig, load_config
from facesr.train.loop import World, resolve_device, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_THREADS = torch.get_num_threads()


def synthetic_pools(seed: int = 0) -> Pools:
    """16 anisotropic Gaussian 25 px kernels, 64 zero-mean 32 px noise patches."""
    rng = np.random.default_rng(seed)
    ks = torch.stack([gaussian_kernel(25, *rng.uniform(0.8, 3.0, 2), rng.uniform(0, np.pi))
                      for _ in range(16)])
    noise = torch.from_numpy(rng.normal(0, 4 / 255, (64, 3, 32, 32)).astype(np.float32))
    noise -= noise.mean(dim=(2, 3), keepdim=True)
    return Pools(KernelPool(ks, [{"source": f"g{i}"} for i in range(16)]),
                 NoisePool(noise, torch.zeros(64, dtype=torch.long), [{"source": "g"}]))


def random_images(folder: Path, n: int = 24, size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.resize(small, (size, size)))
    return folder


def bench(name: str, iterations: int, warmup: int, device: str, random: bool,
          threads: int | None, work: Path) -> None:
    base = load_config(CONFIGS / f"{name}.yaml")
    hq = [str(p) for p in base.data.hq]
    if random or not all(Path(p).exists() for p in hq):
        hq = [str(random_images(work / "random"))]
    total = warmup + iterations
    cfg: TrainConfig = load_config(CONFIGS / f"{name}.yaml", [
        f"data.hq={hq}", "data.val_fraction=0", "data.kernels=null", "data.noise=null",
        f"train.iterations={total}", f"train.checkpoint_every={total}",
        f"train.log_every={total}", "train.tensorboard=false", f"train.device={device}",
        "loss.lpips_backbone=null", "loss.lpips_linear=null", "train.init_g=null",
        *([] if threads is None else [f"train.threads={threads}"])])  # train() applies it
    stamps: list[float] = []

    def on_step(done: int, total: int, logged: dict | None) -> None:
        stamps.append(time.perf_counter())
        print(f"  {name}: iteration {done}/{total}  {time.perf_counter() - t0:.0f} s", end="\r",
              flush=True)

    threads = cfg.train.threads if threads is None else threads
    torch.set_num_threads(threads or DEFAULT_THREADS)
    t, dev = cfg.train, resolve_device(cfg.train.device, World())
    amp = t.amp if dev.type == "cuda" else t.amp_cpu
    print(f"{name}: stage {t.stage}, RRDBNet {cfg.model.num_block} blocks x "
          f"{cfg.model.num_feat} features, batch {t.batch} x {cfg.data.hr_patch} px HR, "
          f"{dev} ({torch.get_num_threads()} threads), amp {amp}, {t.workers} loader workers, "
          f"data: {'random images' if hq[0].startswith(str(work)) else ', '.join(hq)}")
    t0 = time.perf_counter()
    train(cfg, work / name, pools=synthetic_pools(), on_step=on_step)
    print()
    timed = np.diff(stamps[warmup - 1:])
    rate = len(timed) / timed.sum()
    print(f"{name}: {rate:.3f} it/s ({1000 / rate:.0f} ms/it, {rate * t.batch:.1f} HR images/s) "
          f"over {len(timed)} iterations after {warmup} warm-up (setup and first iteration: "
          f"{stamps[0] - t0:.1f} s; {time.perf_counter() - t0:.0f} s in all)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=["cpu-small", "cpu-rrdb23-ft", "paper", "both", "all"],
                    default="both", help="both: cpu-small and paper; all: the three")
    ap.add_argument("--iterations", type=int, default=20, help="timed iterations (cpu-small)")
    ap.add_argument("--paper-iterations", type=int, default=2, help="timed iterations (paper)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first iterations (>= 1)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--random-images", action="store_true", help="no real faces")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: the config's train.threads, as "
                         "`facesr train` sets them; 0: torch's default, one per core)")
    args = ap.parse_args(argv)
    if args.warmup < 1 or args.iterations < 1 or args.paper_iterations < 1:
        ap.error("--warmup and the iteration counts must be >= 1")
    names = {"both": ["cpu-small", "paper"], "all": ["cpu-small", "cpu-rrdb23-ft", "paper"]
             }.get(args.config, [args.config])
    with tempfile.TemporaryDirectory(prefix="facesr-bench-") as tmp:
        for name in names:
            n = args.paper_iterations if name == "paper" else args.iterations
            bench(name, n, args.warmup, args.device, args.random_images, args.threads,
                  Path(tmp))


if __name__ == "__main__":
    main()
