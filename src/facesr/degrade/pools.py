"""Kernel and noise pools: what the degradation draws from, stored as safetensors.

A kernel pool holds ``kernels`` (N, K, K) float32, each summing to 1 and centred (see
``kernels.py``), and one source record per kernel. A noise pool holds ``patches``
(M, 3, P, P) float32 zero-mean noise on the [0, 1] scale and ``source_index`` (M,) int64 into
its list of sources. Metadata carries a format name and version, the sources (JSON) and the
settings that made the pool; nothing is pickled. ``load_pool`` reads either kind, telling them
apart by the format name in the metadata (the tensors are read only after that matched).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import Tensor

from facesr.io import atomic_write_bytes

KERNEL_POOL_FORMAT = "facesr.kernel_pool"
NOISE_POOL_FORMAT = "facesr.noise_pool"
POOL_VERSION = "1"
ZOOM = 4  # picture: every kernel / patch pixel becomes ZOOM x ZOOM
GAP = 2  # px between tiles
GAP_RGB = (0.15, 0.25, 0.55)  # a colour neither a kernel (grey on black) nor noise (grey) has


class PoolError(ValueError):
    """A pool file that cannot be used (message names the file)."""


@dataclass
class KernelPool:
    kernels: Tensor  # (N, K, K)
    sources: list[dict] = field(default_factory=list)  # one per kernel: {"source": ..., ...}
    scale: int = 4
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.kernels.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        if len(self.sources) != len(self):
            raise ValueError(f"{len(self)} kernels but {len(self.sources)} source records")
        meta = {
            "format": KERNEL_POOL_FORMAT,
            "version": POOL_VERSION,
            "scale": str(self.scale),
            "sources": json.dumps(self.sources),
            "settings": json.dumps(self.settings),
        }
        k = self.kernels.detach().float().contiguous().cpu()
        return atomic_write_bytes(path, save({"kernels": k}, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> KernelPool:
        tensors, meta = _load(path, KERNEL_POOL_FORMAT, ("kernels",))
        k = tensors["kernels"]
        if k.ndim != 3 or k.shape[1] != k.shape[2] or k.shape[0] == 0:
            raise PoolError(f"{path}: kernels must be (N>0, K, K), got {tuple(k.shape)}")
        scale = meta.get("scale", "4")
        if not scale.isdigit() or int(scale) < 1:
            raise PoolError(f"{path}: scale {scale!r} is not a positive integer")
        sources = _sources(path, meta)
        if len(sources) != k.shape[0]:
            raise PoolError(f"{path}: {k.shape[0]} kernels but {len(sources)} source records")
        return cls(k.float(), sources, int(scale), _settings(path, meta))

    def settings_used(self, keys: tuple[str, ...]) -> dict[str, list]:
        """The distinct values of each setting in ``keys`` that made this pool's kernels, in
        order of first use: a kernel's source record has the final word, the pool's
        ``settings`` stand in for records without the key (``None``: neither has it)."""
        used: dict[str, list] = {key: [] for key in keys}
        for rec in self.sources:
            for key in keys:
                v = rec.get(key, self.settings.get(key))
                if v not in used[key]:
                    used[key].append(v)
        return used


@dataclass
class NoisePool:
    patches: Tensor  # (M, 3, P, P)
    source_index: Tensor  # (M,) int64
    sources: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        meta = {
            "format": NOISE_POOL_FORMAT,
            "version": POOL_VERSION,
            "sources": json.dumps(self.sources),
            "settings": json.dumps(self.settings),
        }
        tensors = {
            "patches": self.patches.detach().float().contiguous().cpu(),
            "source_index": self.source_index.detach().to(torch.int64).contiguous().cpu(),
        }
        return atomic_write_bytes(path, save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoisePool:
        tensors, meta = _load(path, NOISE_POOL_FORMAT, ("patches", "source_index"))
        p = tensors["patches"]
        if p.ndim != 4 or p.shape[1] != 3 or p.shape[0] == 0:
            raise PoolError(f"{path}: patches must be (M>0, 3, P, P), got {tuple(p.shape)}")
        index = tensors["source_index"]
        if tuple(index.shape) != (p.shape[0],) or index.is_floating_point():
            raise PoolError(f"{path}: source_index must be ({p.shape[0]},) integers, got "
                            f"{tuple(index.shape)} {index.dtype}")
        return cls(p.float(), index.long(), _sources(path, meta), _settings(path, meta))


def pool_format(path: str | os.PathLike) -> str:
    """The format name in a safetensors file's metadata (``KERNEL_POOL_FORMAT``,
    ``NOISE_POOL_FORMAT`` or whatever else it says; ``''`` for none); reads only the header.

    Raises:
        PoolError: no such file, or not a readable safetensors file.
    """
    return _metadata(Path(path)).get("format", "")


def load_pool(path: str | os.PathLike) -> KernelPool | NoisePool:
    """A kernel or a noise pool, whichever the file's metadata says it is.

    Raises:
        PoolError: not a pool file, or a damaged one (the message names the file).
    """
    fmt = pool_format(path)
    if fmt == KERNEL_POOL_FORMAT:
        return KernelPool.load(path)
    if fmt == NOISE_POOL_FORMAT:
        return NoisePool.load(path)
    found = f"format {fmt!r}" if fmt else "no format name"
    raise PoolError(f"{path}: not a facesr pool ({found} in its metadata; expected "
                    f"{KERNEL_POOL_FORMAT} or {NOISE_POOL_FORMAT})")


def _metadata(p: Path) -> dict[str, str]:
    if not p.is_file():
        raise PoolError(f"{p}: " + ("a folder, not a pool file" if p.is_dir()
                                    else "pool file not found"))
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise PoolError(f"{p}: not a readable safetensors file ({e})") from None


def _load(path: str | os.PathLike, fmt: str, keys: tuple[str, ...]) -> tuple[dict, dict]:
    p = Path(path)
    meta = _metadata(p)
    if meta.get("format") != fmt:
        raise PoolError(f"{p}: expected a {fmt} file, found format {meta.get('format')!r}")
    if meta.get("version") != POOL_VERSION:
        raise PoolError(f"{p}: {fmt} version {meta.get('version')!r} is not supported "
                        f"(this facesr reads version {POOL_VERSION})")
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
        raise PoolError(f"{p}: not a readable safetensors file ({e})") from None
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise PoolError(f"{p}: missing tensors {missing}")
    return tensors, meta


def _json(path: str | os.PathLike, meta: dict, key: str, default: str, kind: type) -> object:
    try:
        value = json.loads(meta.get(key, default))
    except ValueError:
        raise PoolError(f"{path}: metadata {key!r} is not valid JSON") from None
    if not isinstance(value, kind):
        raise PoolError(f"{path}: metadata {key!r} is not a JSON {kind.__name__}")
    return value


def _sources(path: str | os.PathLike, meta: dict) -> list[dict]:
    sources = _json(path, meta, "sources", "[]", list)
    if not all(isinstance(r, dict) for r in sources):
        raise PoolError(f"{path}: metadata 'sources' must be a list of JSON objects")
    return sources


def _settings(path: str | os.PathLike, meta: dict) -> dict:
    return _json(path, meta, "settings", "{}", dict)


def pool_picture(pool: KernelPool | NoisePool, max_tiles: int = 400) -> np.ndarray:
    """The first ``max_tiles`` kernels (each scaled to its peak, white on black) or noise
    patches (on mid-grey) of a pool as one grid image. Shape: -> (H, W, 3) float32 in [0, 1].
    """
    if isinstance(pool, KernelPool):
        tiles = [_kernel_tile(k) for k in pool.kernels[:max_tiles].numpy()]
    else:
        tiles = [np.clip(np.nan_to_num(128 / 255 + p.transpose(1, 2, 0)), 0, 1)
                 for p in pool.patches[:max_tiles].numpy()]
    return _grid(tiles)


def _kernel_tile(k: np.ndarray) -> np.ndarray:
    peak = float(k.max())
    g = np.clip(k / peak, 0, 1) if peak > 0 and math.isfinite(peak) else np.zeros_like(k)
    return np.repeat(np.nan_to_num(g)[..., None], 3, axis=2)


def _grid(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles (h, w, 3) in [0, 1], enlarged ZOOM x with nearest-neighbour, in a near-square
    grid (row-major) with GAP px between and around them. Shape: -> (H, W, 3) float32."""
    h, w = tiles[0].shape[:2]
    th, tw = h * ZOOM, w * ZOOM
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    img = np.empty((rows * (th + GAP) + GAP, cols * (tw + GAP) + GAP, 3), np.float32)
    img[:] = GAP_RGB
    for i, t in enumerate(tiles):
        y, x = GAP + (i // cols) * (th + GAP), GAP + (i % cols) * (tw + GAP)
        img[y:y + th, x:x + tw] = np.repeat(np.repeat(t, ZOOM, axis=0), ZOOM, axis=1)
    return img
