"""The camera's model: the base model fine-tuned on clean faces degraded like this camera.

The training run is an ordinary ``facesr train`` run (``CAMERA_DIR/train/``: config.yaml,
checkpoints, metrics.jsonl, heldout.txt), made by :func:`train_config`:

- data: the target faces, degraded with the camera's kernel pool and noise pool (the
  ``paper`` preset: a pool kernel, a pool noise patch, JPEG 30 with probability 0.9; JPEG at
  the camera's own qualities instead when its footage shows them: ``profile.compression``);
  the faces are used at 128-256 px (``data.factors`` from their size: surveillance faces are
  small);
  ``HELD_OUT`` files are held out (``heldout.txt``): the synthetic check is made on them;
- model: the base model's architecture, initialised from its weights;
- optimisation: Adam at a constant learning rate (``LR`` unless ``--lr``: a budget in minutes
  has no known end to schedule towards), EMA of the weights (decay ``EMA``: short runs), the
  colour term of facesr-default.

A budget in minutes (``--minutes``) ends the run at the first iteration past the budget
(``facesr.train.loop.train``'s ``stop_when``); a re-run of ``facesr adapt`` resumes the run from
its last checkpoint for what is left of the budget (a larger ``--minutes`` continues it).
``--iterations N`` gives a fixed, reproducible length instead.

Distillation (``facesr adapt --distill``): a second run of the same kind (``CAMERA_DIR/distill/``)
fine-tunes the student (facesr-default unless ``--student``) from its own weights on the same
degraded faces, with the adapted base model as a frozen teacher: L1 to the clean face + the
colour term + ``L_TEACHER`` x L1 to the teacher's output on the same input (``loss.teacher``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from facesr.io import image_size
from facesr.models.rrdb import save_rrdb
from facesr.models.zoo import load as load_model
from facesr.train.checkpoint import POINTER
from facesr.train.config import TrainConfig, load_config

HELD_OUT = 20  # faces held out for the synthetic check
TARGET_SIDES = (128, 192, 256)  # face sizes (HR px) trained on
LR = 5e-5
EMA = 0.995
BATCH = 8
HR_PATCH = 96
NO_END = 10_000_000  # train.iterations when the budget is in minutes
L_TEACHER = 1.0  # distillation: weight of L1 to the teacher's output (L1 to the face: 1)


def base_weights(base: str, camera_dir: Path, stem: str = "base") -> tuple[Path, dict]:
    """A model as a weights file in the camera folder (``STEM.safetensors``, fp16: the base
    model, or ``student`` for distillation) and its record (``STEM.json``); a named model
    (ncnn ones included) is exported once."""
    path = camera_dir / f"{stem}.safetensors"
    model, info = load_model(base)
    rec = info.record()
    marker = camera_dir / f"{stem}.json"
    if path.is_file() and marker.is_file() and \
            json.loads(marker.read_text()).get("sha256") == rec["sha256"]:
        return path, rec
    import torch

    save_rrdb(path, model, dtype=torch.float16, source=f"base of facesr adapt: {info.name}")
    marker.write_text(json.dumps(rec, indent=2))
    return path, rec


def factors_for(files: Sequence[Path]) -> tuple[float, ...]:
    """``data.factors`` that bring the faces to ``TARGET_SIDES`` (from the median side of up
    to 16 of them); faces smaller than 128 px are used as they are."""
    sides = []
    for f in list(files)[:16]:
        try:
            sides.append(min(image_size(f)))
        except Exception:  # noqa: BLE001 - an unreadable face is reported by training
            continue
    side = float(sorted(sides)[len(sides) // 2]) if sides else 256.0
    fs = sorted({round(min(1.0, t / side), 4) for t in TARGET_SIDES}, reverse=True)
    return tuple(fs)


def training_precision(name: str) -> str:
    """``--precision`` resolved: "auto" is "bf16" on CPUs that compute bf16 natively (AMX-BF16
    or AVX512-BF16: bf16 autocast took 2.8 against 5.4 s a step for facesr-rrdb23 on a batch
    of eight 96 px faces, one thread of an AVX512-BF16 Xeon), else "fp32" (without those
    units PyTorch has no native bf16 arithmetic to gain from; not measured on such a CPU);
    "fp32" and "bf16" are kept.

    Raises:
        ValueError: another name.
    """
    if name == "auto":
        from facesr.infer.pipeline import cpu_has_bf16_units

        return "bf16" if cpu_has_bf16_units() else "fp32"
    if name not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {name!r}")
    return name


def train_config(*, faces_list: Path, faces: Sequence[Path], kernels: Path, noise: Path | None,
                 init: Path, arch: dict, iterations: int | None, threads: int, seed: int,
                 teacher: Path | None = None, jpeg: dict | None = None,
                 precision: str = "fp32", lr: float = LR) -> TrainConfig:
    """The fine-tuning run's config (see module docs); with ``teacher`` (a weights file), the
    distillation run's; ``jpeg``: ``profile.compression``'s record (its ``quality`` range and
    ``prob`` replace the method's JPEG 30 with probability 0.9 when found); ``precision``:
    "fp32" or "bf16" (autocast, ``train.amp_cpu``; ``training_precision`` resolves "auto");
    ``lr``: Adam's constant learning rate."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    n = iterations or NO_END
    every = max(1, min(100, n))
    degrade: dict = {} if noise is not None else {"noise": "gaussian"}
    if jpeg and jpeg.get("quality"):
        degrade.update(jpeg_prob=jpeg["prob"], jpeg_quality=list(jpeg["quality"]))
    sets = {
        "data.hq": [str(faces_list.resolve())],
        "data.kernels": str(kernels.resolve()),
        "data.noise": str(noise.resolve()) if noise is not None else None,
        "data.preset": "paper",
        "data.degrade": degrade,
        "data.hr_patch": HR_PATCH,
        "data.factors": list(factors_for(faces)),
        "data.val_count": HELD_OUT, "data.val_max": HELD_OUT,
        "model.num_block": arch["num_block"], "model.num_feat": arch["num_feat"],
        "model.num_grow_ch": arch["num_grow_ch"], "model.scale": 4,
        "loss.l_color": 1.0, "loss.color_pool": 8,
        "optim.lr": lr, "optim.milestones": [], "optim.betas": [0.9, 0.99],
        "train.stage": "psnr", "train.iterations": n, "train.batch": BATCH,
        "train.ema_decay": EMA, "train.checkpoint_every": every, "train.keep_checkpoints": 2,
        "train.val_every": every, "train.log_every": max(1, min(25, n)), "train.seed": seed,
        "train.device": "cpu", "train.channels_last": False,
        "train.amp_cpu": "bf16" if precision == "bf16" else "none",
        "train.workers": 0, "train.threads": threads, "train.init_g": str(init.resolve()),
        "train.tensorboard": False,
    }
    if teacher is not None:
        sets["loss.teacher"] = str(teacher.resolve())
        sets["loss.l_teacher"] = L_TEACHER
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in sets.items()])


def run(cfg: TrainConfig, run_dir: Path, *, seconds_left: float | None,
        on_step: Callable | None = None, on_start: Callable[[str], None] | None = None
        ) -> dict:
    """Train (or resume) ``run_dir`` for ``seconds_left`` seconds (None: to its iterations)."""
    import time

    from facesr.train.loop import train

    resume = (run_dir / POINTER).exists()
    stop_when = None
    if seconds_left is not None:
        deadline = time.monotonic() + seconds_left
        stop_when = lambda done: time.monotonic() >= deadline  # noqa: E731
    return train(cfg, run_dir, resume=resume, on_step=on_step, on_start=on_start,
                 stop_when=stop_when)
