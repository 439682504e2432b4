"""The data stream: DDP shares make up the single-process batch, resuming continues it."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.degrade.degradation import PRESETS, Pools
from facesr.train.data import StreamBatches, split_files, validation_set


def _batches(n: int, batch: int, count: int, **kw: int) -> list[list[tuple[int, int]]]:
    return list(islice(iter(StreamBatches(n, batch, seed=3, **kw)), count))


def test_every_epoch_visits_every_item_once() -> None:
    keys = [k for b in _batches(5, 4, 5) for k in b]  # 20 items: 4 epochs of 5
    for epoch in range(4):
        assert sorted(i for e, i in keys if e == epoch) == list(range(5))
    assert [e for e, _ in keys] == sorted(e for e, _ in keys)
    orders = {tuple(i for e, i in keys if e == epoch) for epoch in range(4)}
    assert len(orders) > 1  # a new order each epoch


def test_process_shares_make_up_the_global_batch() -> None:
    whole = _batches(5, 4, 6)
    shares = [_batches(5, 4, 6, rank=r, world_size=2) for r in range(2)]
    assert [a + b for a, b in zip(*shares, strict=True)] == whole
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        StreamBatches(5, 4, 0, world_size=3)


def test_a_resumed_stream_continues_where_it_stopped() -> None:
    whole = _batches(7, 3, 10)
    assert _batches(7, 3, 6, start=4 * 3) == whole[4:]


def test_split_holds_out_whole_files_by_seed_not_order(tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.png" for i in range(20)]
    train, val = split_files(files, 0.1, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and len(train) == 18
    assert split_files(list(reversed(files)), 0.1, seed=0) == (train, val)
    assert split_files(files, 0.1, seed=1)[1] != val
    assert split_files(files, 0.0, seed=0) == (sorted(files, key=str), [])
    assert len(split_files(files[:3], 0.01, seed=0)[1]) == 1  # at least one
    with pytest.raises(ValueError, match="leave none for training"):
        split_files(files[:1], 0.5, seed=0)


def test_split_keeps_groups_together_by_seed_not_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files = [tmp_path / f"{i}.png" for i in range(40)]
    for seed in range(20):
        groups = [[files[i] for i in rng.choice(40, rng.integers(2, 6), replace=False)]
                  for _ in range(int(rng.integers(1, 8)))]
        groups.append([files[0], tmp_path / "elsewhere.png"])  # a path not in files: ignored
        train, val = split_files(files, 0.2, seed, groups=groups)
        assert sorted(train + val, key=str) == sorted(files, key=str)
        assert len(val) >= 8
        joined = [set(g) - {tmp_path / "elsewhere.png"} for g in groups]
        while True:  # groups sharing a file merge
            merged = next(((a, b) for a in range(len(joined)) for b in range(a + 1, len(joined))
                           if joined[a] & joined[b]), None)
            if merged is None:
                break
            joined[merged[0]] |= joined.pop(merged[1])
        assert len(val) < 8 + max(map(len, joined))  # stops once it holds enough
        for g in joined:
            assert g <= set(train) or g <= set(val), (seed, g)
        shuffled = [list(reversed(g)) for g in reversed(groups)]
        assert split_files(files[::-1], 0.2, seed, groups=shuffled) == (train, val)
    with pytest.raises(ValueError, match="leaves none for training"):
        split_files(files[:4], 0.25, 0, groups=[files[:4]])


def test_the_validation_set_is_fixed(faces_dir: Path, pools: Pools) -> None:
    files = sorted(faces_dir.iterdir())[:2]
    kw = {"hr_patch": 32, "factors": (1.0, 0.75), "seed": 0, "count": 6}
    lr, hr = validation_set(files, pools, PRESETS["paper"], **kw)
    assert lr.shape == (6, 3, 8, 8) and hr.shape == (6, 3, 32, 32)
    lr2, hr2 = validation_set(files, pools, PRESETS["paper"], **kw)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert not torch.equal(hr[0], hr[4])  # past the 4 items, a second (different) round
