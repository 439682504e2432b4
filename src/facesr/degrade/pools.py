"""Kernel and noise pools: what the degradation draws from, stored as safetensors.

A kernel pool holds ``kernels`` (N, K, K) float32, each summing to 1 and centred (see
``kernels.py``), and one source record per kernel. A noise pool holds ``patches``
(M, 3, P, P) float32 zero-mean noise on the [0, 1] scale and ``source_index`` (M,) int64 into
its list of sources. Metadata carries a format name and version, the sources (JSON) and the
settings that made the pool; nothing is pickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor

from facesr.io import atomic_write_bytes

KERNEL_POOL_FORMAT = "facesr.kernel_pool"
NOISE_POOL_FORMAT = "facesr.noise_pool"
POOL_VERSION = "1"


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
        return cls(k.float(), json.loads(meta.get("sources", "[]")), int(meta.get("scale", 4)),
                   json.loads(meta.get("settings", "{}")))


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
        return cls(p.float(), tensors["source_index"].long(),
                   json.loads(meta.get("sources", "[]")), json.loads(meta.get("settings", "{}")))


def _load(path: str | os.PathLike, fmt: str, keys: tuple[str, ...]) -> tuple[dict, dict]:
    p = Path(path)
    if not p.is_file():
        raise PoolError(f"{p}: pool file not found")
    try:
        tensors = load_file(str(p))
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise PoolError(f"{p}: not a readable safetensors file ({e})") from None
    if meta.get("format") != fmt:
        raise PoolError(f"{p}: expected a {fmt} file, found format {meta.get('format')!r}")
    if meta.get("version") != POOL_VERSION:
        raise PoolError(f"{p}: {fmt} version {meta.get('version')!r} is not supported "
                        f"(this facesr reads version {POOL_VERSION})")
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise PoolError(f"{p}: missing tensors {missing}")
    return tensors, meta
