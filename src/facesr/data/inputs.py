"""Inputs shared by the commands and training: lists of clean faces, and the pools a
degradation draws from. Callers turn the errors into their own (a usage error, a config error).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from facesr.degrade.degradation import DegradeConfig, Pools
from facesr.degrade.pools import KernelPool, NoisePool, PoolError
from facesr.io import expand_inputs


class MissingPool(ValueError):
    """The degradation draws from a pool whose file was not given.

    Attributes:
        what: ``"kernels"`` or ``"noise"``.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"this degradation draws pool {what}")


def hq_files(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """Images from files, folders (recursive), and ``.txt`` lists (one path a line, as
    ``facesr data curate`` writes; ``#`` comments; a relative path is relative to the list's
    folder). May be empty.

    Raises:
        InputError: a path that does not exist.
    """
    files: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.suffix.lower() == ".txt" and p.is_file():
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
            files.extend(Path(os.path.normpath(p.parent / Path(ln).expanduser()))
                         for ln in lines if ln and not ln.startswith("#"))
        else:
            files.extend(expand_inputs([p], kinds=("image",)))
    return files


def load_pools(cfg: DegradeConfig, kernels: str | os.PathLike | None,
               noise: str | os.PathLike | None) -> Pools:
    """Load the pools ``cfg`` draws from (a pool it does not draw from is not read).

    Raises:
        MissingPool: ``cfg`` draws from a pool whose file is None.
        PoolError: a pool file that cannot be read, or a kernel pool of another scale.
    """
    if cfg.kernel == "pool" and kernels is None:
        raise MissingPool("kernels")
    if cfg.noise == "pool" and noise is None:
        raise MissingPool("noise")
    kp = KernelPool.load(kernels) if cfg.kernel == "pool" else None
    npool = NoisePool.load(noise) if cfg.noise == "pool" else None
    if kp is not None and kp.scale != cfg.scale:
        raise PoolError(f"{kernels}: kernel pool is for x{kp.scale}, the degradation is "
                        f"x{cfg.scale}")
    return Pools(kp, npool)
