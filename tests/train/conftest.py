"""Tiny synthetic data, in-memory pools and a tiny config for the training tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facesr.degrade.degradation import Pools
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.train.config import TrainConfig, config_to_yaml, load_config

TINY = [
    "model.num_block=1", "model.num_feat=8", "model.num_grow_ch=4",
    "disc.ndf=8", "disc.n_layers=2",
    "data.hr_patch=32", "data.factors=[1.0, 0.75]", "data.val_fraction=0.2",
    "data.val_max=4",
    "optim.lr=1e-3", "optim.milestones=[1000]",
    "train.stage=psnr", "train.iterations=8", "train.batch=4", "train.workers=0",
    "train.log_every=1", "train.val_every=4", "train.checkpoint_every=2",
    "train.tensorboard=false", "train.device=cpu", "train.ema_decay=0.9",
    "train.collapse_db=null",  # random weights: every GAN validation is far below bicubic
    "loss.l_lpips=0",
]


def make_pools() -> Pools:
    """Two Gaussian kernels and four zero-mean noise patches, in memory."""
    g = torch.Generator().manual_seed(0)
    kernels = torch.stack([gaussian_kernel(13, 1.0), gaussian_kernel(13, 2.0, 1.2, 0.5)])
    patches = torch.randn(4, 3, 8, 8, generator=g) * 0.01
    patches = patches - patches.mean((2, 3), keepdim=True)
    return Pools(KernelPool(kernels, [{"source": "a"}, {"source": "b"}]),
                 NoisePool(patches, torch.zeros(4, dtype=torch.long), [{"source": "n"}]))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: tiny convolutions run faster, and timings vary less on a busy
    machine (results are the same within a thread count, which the resume tests need)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def pools() -> Pools:
    return make_pools()


@pytest.fixture()
def pool_files(tmp_path: Path) -> tuple[Path, Path]:
    """``make_pools()`` saved as pool files: (kernels, noise)."""
    p = make_pools()
    return (p.kernels.save(tmp_path / "pools" / "kernels.safetensors"),
            p.noise.save(tmp_path / "pools" / "noise.safetensors"))


@pytest.fixture()
def faces_dir(tmp_path: Path) -> Path:
    """Ten smooth 48x48 colour images with some structure to learn."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "hq"
    folder.mkdir()
    for i in range(10):
        img = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"face{i}.png"), img)
    return folder


@pytest.fixture()
def tiny(faces_dir: Path) -> Callable[..., TrainConfig]:
    """``tiny("train.iterations=4", ...)``: the tiny config with more overrides."""

    def make(*overrides: str) -> TrainConfig:
        return load_config(None, [*TINY, f"data.hq=[{faces_dir}]", *overrides])

    return make



@pytest.fixture()
def start_training() -> Callable[[TrainConfig, Path, Path], subprocess.Popen]:
    """``start_training(cfg, config_file, run)``: a real ``facesr train`` process on ``cfg``
    (written to ``config_file``) into ``run``, one thread as this process; stdout dropped,
    stderr piped."""

    def start(cfg: TrainConfig, config: Path, run: Path) -> subprocess.Popen:
        config.write_text(config_to_yaml(cfg), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-c", "from facesr.cli import main; main()",
               "train", str(config), "--out", str(run)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    return start


@pytest.fixture()
def wait_until() -> Callable[..., None]:
    """``wait_until(proc, ready, what, timeout=120, poll=0.002)``: poll ``ready()`` while
    ``proc`` runs; fail with its stderr if it ends first, or after ``timeout`` seconds."""

    def wait(proc: subprocess.Popen, ready: Callable[[], bool], what: str, *,
             timeout: float = 120, poll: float = 0.002) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
            time.sleep(poll)

    return wait
