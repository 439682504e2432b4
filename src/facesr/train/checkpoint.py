"""Run-directory checkpoints that survive ``kill -9`` at any moment.

Layout of one checkpoint, ``RUN/ckpt/<iteration, 9 digits>/``:

- ``G.safetensors``, ``G_ema.safetensors``: generator and its EMA, in ``facesr.rrdb`` format
  (:func:`facesr.models.rrdb.rrdb_file` makes them, ``read_rrdb`` / ``load_rrdb`` read them;
  BasicSR key names), metadata also holding the config, stage and iteration;
- ``D.safetensors`` (GAN stage): discriminator, format ``facesr.patchgan``;
- ``state.pt``: optimizer, GradScaler and RNG states and the data-stream position, plain
  tensors and containers (``torch.load(weights_only=True)`` reads it).

A checkpoint is written into ``ckpt/.tmp-<name>-<pid>/`` (every file fsynced), renamed into
place, and only then is ``RUN/latest.json`` replaced atomically to point at it. Readers follow
the pointer only, so a temporary folder or a finished folder the pointer does not name yet
(a crash between the two steps) is never used; ``clean_run_dir`` removes them on resume.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from facesr.io import atomic_write_text
from facesr.models.rrdb import RRDBNet, read_rrdb, rrdb_file, save_rrdb

log = logging.getLogger(__name__)

RUN_FORMAT = "facesr.train_run"
STATE_FORMAT = "facesr.train_state"
DISC_FORMAT = "facesr.patchgan"
VERSION = "1"
POINTER = "latest.json"
CKPT_DIR = "ckpt"


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be resumed (message says which file)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint; tensors on CPU."""

    path: Path
    iteration: int
    g: dict[str, Tensor]
    g_ema: dict[str, Tensor] | None
    d: dict[str, Tensor] | None
    state: dict


def _cpu_state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_checkpoint(run_dir: Path, iteration: int, *, g: RRDBNet, g_ema: RRDBNet | None,
                    d: torch.nn.Module | None, d_arch: dict[str, object] | None, state: dict,
                    config_yaml: str, stage: str, keep: int) -> Path:
    """Write checkpoint ``iteration`` atomically, point ``latest.json`` at it, prune old ones.

    Args:
        d_arch: PatchDiscriminator arguments, for its metadata.
        state: plain data for ``state.pt`` (optimizers, RNG, data position).
        keep: complete checkpoints to keep (the newest ones).

    Returns:
        The checkpoint folder.
    """
    run_dir = Path(run_dir)
    root = run_dir / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"{iteration:09d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    common = {"config": config_yaml, "stage": stage, "iteration": str(iteration)}
    files = {"G.safetensors": rrdb_file(g, source=f"facesr train, G, it {iteration}",
                                        metadata=common)}
    if g_ema is not None:
        files["G_ema.safetensors"] = rrdb_file(
            g_ema, source=f"facesr train, G EMA, it {iteration}", metadata=common)
    if d is not None:
        d_meta = {"format": DISC_FORMAT, "version": VERSION, "arch": "PatchDiscriminator",
                  **{k: str(v) for k, v in (d_arch or {}).items()}, **common}
        files["D.safetensors"] = (_cpu_state(d), d_meta)
    for fname, (tensors, meta) in files.items():  # into the temporary folder: no atomic files
        save_file(tensors, str(tmp / fname), metadata=meta)
    torch.save({"format": STATE_FORMAT, "version": VERSION, "iteration": iteration,
                "config": config_yaml, **state}, tmp / "state.pt")
    sizes = {}
    for f in sorted(tmp.iterdir()):
        _fsync_file(f)
        sizes[f.name] = f.stat().st_size
    _fsync_dir(tmp)
    final = root / name
    if final.exists():  # finished by a run that died before pointing at it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    pointer = {"format": RUN_FORMAT, "version": VERSION, "iteration": iteration,
               "checkpoint": f"{CKPT_DIR}/{name}", "files": sizes,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_text(run_dir / POINTER, json.dumps(pointer, indent=1) + "\n")
    _fsync_dir(run_dir)
    _prune(root, iteration, keep)
    return final


def export_generator(path: Path, g: RRDBNet, *, config_yaml: str, stage: str, iteration: int,
                     source: str) -> Path:
    """Write generator weights (``facesr.rrdb`` format, config in metadata) atomically."""
    return save_rrdb(path, g, source=source, metadata={
        "config": config_yaml, "stage": stage, "iteration": str(iteration)})


def _complete_dirs(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    return sorted((int(p.name), p) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def _prune(root: Path, current: int, keep: int) -> None:
    done = [(i, p) for i, p in _complete_dirs(root) if i <= current]
    for _, p in done[:-max(keep, 1)]:
        shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``latest.json`` names, checked complete; None when there is no pointer."""
    run_dir = Path(run_dir)
    ptr = run_dir / POINTER
    if not ptr.is_file():
        return None
    try:
        info = json.loads(ptr.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ptr}: unreadable ({e})") from None
    if info.get("format") != RUN_FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{ptr}: not a {RUN_FORMAT} v{VERSION} pointer")
    path = run_dir / info["checkpoint"]
    for fname, size in info.get("files", {}).items():
        f = path / fname
        if not f.is_file() or f.stat().st_size != size:
            raise CheckpointError(f"{f}: missing or not the size latest.json records "
                                  f"({size} bytes); the run directory was modified")
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint folder (see module docs) to CPU."""
    path = Path(path)
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"{path / 'state.pt'}: unreadable ({e})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path / 'state.pt'}: not a {STATE_FORMAT} file")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path / 'state.pt'}: version {state.get('version')!r} is not "
                              f"supported (this facesr reads {VERSION})")

    def generator(fname: str) -> dict[str, Tensor] | None:
        if not (path / fname).is_file():
            return None
        try:
            return read_rrdb(path / fname).state  # the facesr.rrdb checks, as stored
        except ValueError as e:
            raise CheckpointError(str(e)) from None

    g = generator("G.safetensors")
    if g is None:
        raise CheckpointError(f"{path}: no G.safetensors")
    d = load_file(str(path / "D.safetensors")) if (path / "D.safetensors").is_file() else None
    return Checkpoint(path, int(state["iteration"]), g, generator("G_ema.safetensors"), d, state)


def clean_run_dir(run_dir: Path, iteration: int) -> list[Path]:
    """Remove leftovers of an interrupted run: temporary checkpoint folders, and finished
    checkpoints newer than ``iteration`` (the one resumed from) that were never pointed at.

    Returns:
        The removed folders.
    """
    root = Path(run_dir) / CKPT_DIR
    removed = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            stale_tmp = p.name.startswith(".tmp-")
            orphan = p.name.isdigit() and int(p.name) > iteration
            if p.is_dir() and (stale_tmp or orphan):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
                log.info("removed %s (left by an interrupted run)", p)
    return removed
