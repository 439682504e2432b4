"""Training data: the held-out split, a resumable batch stream, and the fixed validation set.

The training stream is the concatenation of per-epoch permutations of the training items;
global batch ``k`` is stream items ``[start + k*B, start + (k+1)*B)``, where ``start`` is the
number of items consumed before (0, or what a checkpoint recorded). Item ``(epoch, index)`` is
drawn by ``DegradedFaces``, deterministic in (seed, epoch, index). So a run's data depends
only on (seed, file list, B): a resumed run continues exactly where it stopped, whatever the
number of DDP processes, each of which takes its contiguous share of every global batch
(rank r: items ``[r*B/W, (r+1)*B/W)``), so their concatenation is the single-process batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from facesr.data.dataset import DegradedFaces, collate_pairs
from facesr.data.dedup import components
from facesr.degrade.degradation import DegradeConfig, Pools
from facesr.train.config import DataConfig

PERM_TAG = 0x7065726D  # "perm": keeps the permutation stream apart from the items' streams
SPLIT_TAG = 0x73706C74  # "splt"


def split_files(files: Sequence[Path], fraction: float, seed: int, *,
                groups: Iterable[Iterable[Path]] = (), count: int | None = None
                ) -> tuple[list[Path], list[Path]]:
    """Hold out about ``round(fraction * n)`` whole files (at least one when ``fraction`` > 0),
    or ``count`` files when given, never separating a group.

    Args:
        groups: files to keep on one side, e.g. near-duplicates
            (:func:`facesr.data.dedup.near_duplicate_groups`), a person's photos, a video's
            frames. Groups that share a file merge; paths not in ``files`` are ignored.

    The held-out side takes units (a group, or a file in no group) in a seeded order until it
    holds ``round(fraction * n)`` files or more, so it can exceed that by a group's size less
    one. Without groups the units are the files. The split depends on the seed and the sets
    of files and groups, not on their order.

    Returns:
        (train files, validation files), each sorted.
    """
    uniq = sorted({Path(f) for f in files}, key=str)
    if count is not None:
        n_val = count
    else:
        n_val = round(len(uniq) * fraction)
        if fraction > 0:
            n_val = max(n_val, 1)
    if n_val >= len(uniq):
        raise ValueError(f"{len(uniq)} HQ files leave none for training after holding out "
                         f"{n_val} for validation (lower data.val_fraction or "
                         f"data.val_count)")
    units = _units(uniq, groups)
    perm = np.random.default_rng([SPLIT_TAG, seed]).permutation(len(units))
    val: set[int] = set()
    for u in perm:
        if len(val) >= n_val:
            break
        val.update(units[u])
    if len(val) == len(uniq):
        raise ValueError(f"{len(uniq)} HQ files form {len(units)} groups that must stay "
                         f"together; holding out {n_val} files leaves none for training")
    return ([f for i, f in enumerate(uniq) if i not in val],
            [f for i, f in enumerate(uniq) if i in val])


def _units(uniq: list[Path], groups: Iterable[Iterable[Path]]) -> list[list[int]]:
    """Indices of ``uniq`` merged by ``groups`` (union-find), ordered by their first index."""
    index = {f: i for i, f in enumerate(uniq)}
    links = []
    for group in groups:
        members = [index[p] for p in map(Path, group) if p in index]
        links += [(members[0], m) for m in members[1:]]
    return components(len(uniq), links)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the ``n`` items."""
    return np.random.default_rng([PERM_TAG, seed, epoch]).permutation(n)


def data_state(items: int, n: int, seed: int) -> dict:
    """Where the stream stands after ``items`` items (stored in checkpoints)."""
    return {"items": items, "epoch": items // n, "position": items % n, "perm_seed": seed,
            "num_items": n}


class StreamBatches(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(epoch, index)`` keys for one process (see module docs).

    Args:
        n: items per epoch.
        batch: global batch B (all processes together); divisible by ``world_size``.
        seed: permutation seed.
        start: stream items consumed before the first batch.
    """

    def __init__(self, n: int, batch: int, seed: int, *, start: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if batch % world_size:
            raise ValueError(f"batch {batch} is not divisible by the {world_size} processes")
        if n < 1:
            raise ValueError("no training items")
        self.n, self.batch, self.seed, self.start = n, batch, seed, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per = self.batch // self.world_size
        pos, orders = self.start, {}
        while True:
            keys = []
            for p in range(pos + self.rank * per, pos + (self.rank + 1) * per):
                epoch, i = divmod(p, self.n)
                if epoch not in orders:
                    orders = {e: o for e, o in orders.items() if e >= epoch - 1}
                    orders[epoch] = epoch_order(self.n, self.seed, epoch)
                keys.append((epoch, int(orders[epoch][i])))
            yield keys
            pos += self.batch


class EpochItems(Dataset):
    """``DegradedFaces`` indexed by ``(epoch, index)`` keys (safe in worker processes)."""

    def __init__(self, faces: DegradedFaces) -> None:
        self.faces = faces

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.faces.set_epoch(epoch)
        return self.faces[index]


def make_loader(faces: DegradedFaces, sampler: StreamBatches, *, workers: int,
                pin_memory: bool = False) -> DataLoader:
    """An endless, in-order loader of collated batches (``collate_pairs``)."""
    return DataLoader(EpochItems(faces), batch_sampler=sampler, num_workers=workers,
                      collate_fn=collate_pairs, pin_memory=pin_memory,
                      prefetch_factor=2 if workers else None)


def burst_args(data: DataConfig) -> dict:
    """The burst keywords of :class:`DegradedFaces` from a ``DataConfig``."""
    return {"burst": None if data.burst is None else tuple(data.burst),
            "burst_shift": data.burst_shift, "burst_rotate": data.burst_rotate}


def validation_set(files: Sequence[Path], pools: Pools, cfg: DegradeConfig, *, hr_patch: int,
                   factors: tuple[float, ...], seed: int, count: int,
                   **burst: Any) -> tuple[Tensor, Tensor]:
    """``count`` fixed (LR, HR) crops of the held-out files: item k is DegradedFaces item
    ``k mod n`` of epoch ``k div n``, no flips, seeded by ``seed`` (same every run);
    ``burst``: :func:`burst_args`.

    Shape: -> lr (count, 3, p/s, p/s), hr (count, 3, p, p).
    """
    faces = DegradedFaces(list(files), pools, cfg, hr_patch=hr_patch, factors=factors,
                          seed=seed, augment=False, **burst)
    ds = EpochItems(faces)
    items = [ds[divmod(k, len(faces))] for k in range(count)]
    return (torch.stack([it["lr"] for it in items]), torch.stack([it["hr"] for it in items]))
