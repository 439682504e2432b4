"""Near-duplicates: re-encoded copies are grouped, distinct faces (even one person's two photos)
are not, grouping is exact and order-free, and the held-out split never separates a group."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesr.data import dedup
from facesr.data.dedup import (
    DUPLICATE_DISTANCE,
    near_duplicate_groups,
    signature,
    signature_groups,
)
from facesr.io import read_image_array, write_image
from facesr.train.data import split_files


def _resize_round_trip(img: np.ndarray) -> np.ndarray:
    """One pixel smaller and back (200 -> 199 -> 200)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (w - 1, h - 1), interpolation=cv2.INTER_AREA)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def _copies(img: np.ndarray, stem: Path) -> list[Path]:
    """Re-saved as JPEG quality 90 and 75, and resized by a pixel and back (PNG)."""
    return [write_image(f"{stem}_q90.jpg", img, jpeg_quality=90),
            write_image(f"{stem}_q75.jpg", img, jpeg_quality=75),
            write_image(f"{stem}_resized.png", _resize_round_trip(img))]


@pytest.fixture(scope="module")
def faces(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Seven faces of ../shared copied to a tmp dir: name -> [original, its copies...].

    Four have re-encoded copies (JPEG q90, q75, resized by a pixel and back); london_n and
    london_s are the neutral and smiling photos of one person (no copies).
    """
    hq = shared / "data" / "faces_hq"
    utk = sorted((hq / "utkface").glob("*.jpg"))
    n_photo = sorted((hq / "london512").glob("n_*.jpg"))[0]
    s_photo = next((hq / "london512").glob(f"s_{n_photo.stem.split('_')[1]}_*.jpg"))
    picks = {"utk_a": utk[0], "utk_b": utk[len(utk) // 2], "alae": hq / "alae512" / "00000.png",
             "canada": sorted((hq / "canada512").glob("*.jpg"))[0],
             "london_n": n_photo, "london_s": s_photo}
    root = tmp_path_factory.mktemp("faces")
    out: dict[str, list[Path]] = {}
    for name, src in picks.items():
        original = root / f"{name}{src.suffix}"
        shutil.copyfile(src, original)
        out[name] = [original]
        if name.startswith("london"):
            continue
        out[name] += _copies(read_image_array(original), root / name)
    return out


def test_reencoded_copies_are_grouped_and_distinct_faces_are_not(faces):
    files = [f for group in faces.values() for f in group]
    groups = near_duplicate_groups(files)
    expected = sorted((sorted(g, key=str) for g in faces.values() if len(g) > 1),
                      key=lambda g: str(g[0]))
    assert groups == expected  # london_n and london_s (one person, two photos) stay apart
    sig = {n: [signature(read_image_array(f)) for f in g] for n, g in faces.items()}
    for name, (original, *copies) in sig.items():  # copies sit well inside the threshold
        assert all(np.linalg.norm(c - original) < DUPLICATE_DISTANCE / 4 for c in copies), name
    for a, b in itertools.combinations(sig, 2):
        assert np.linalg.norm(sig[a][0] - sig[b][0]) > DUPLICATE_DISTANCE, (a, b)


def test_grouping_depends_on_the_set_of_files_not_their_order(faces):
    files = [f for group in faces.values() for f in group]
    groups = near_duplicate_groups(files)
    assert near_duplicate_groups(files[::-1] + files[:3]) == groups


def test_the_split_never_separates_a_group(faces):
    files = [f for group in faces.values() for f in group]
    groups = near_duplicate_groups(files)
    for seed, fraction in itertools.product(range(10), (0.1, 0.3, 0.5)):
        train, val = split_files(files, fraction, seed, groups=groups)
        assert sorted(train + val, key=str) == sorted(files, key=str)
        for g in groups:
            assert set(g) <= set(train) or set(g) <= set(val), (seed, fraction, g)


def test_signature_ignores_brightness_and_contrast():
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.uniform(0.2, 0.8, (12, 9, 3)).astype(np.float32), (90, 120))
    assert np.linalg.norm(signature(img) - signature(0.5 * img + 0.3)) < 1e-4
    assert np.allclose(signature(np.full((50, 50, 3), 0.4, np.float32)), 0)  # flat: no signature


def test_groups_are_the_connected_components_of_close_pairs(monkeypatch):
    """Blocked comparison + union-find equal brute force, chains included."""
    monkeypatch.setattr(dedup, "CHUNK", 7)  # many blocks, off-diagonal ones included
    rng = np.random.default_rng(1)
    base = rng.normal(size=(30, 64))
    near = base[[3, 3, 10, 25]] + rng.normal(size=(4, 64)) * 0.002  # copies of 3, 10, 25
    step = rng.normal(size=64)
    step *= 0.035 * np.linalg.norm(base[25]) / np.linalg.norm(step)  # under t = 0.05; 2 over
    chain = base[25] + np.outer(np.arange(1, 4), step)  # 25 and three steps away from it
    s = np.concatenate([base, near, chain])
    s = (s - s.mean(1, keepdims=True)) / np.linalg.norm(s - s.mean(1, keepdims=True), axis=1,
                                                        keepdims=True)
    s = s[rng.permutation(len(s))].astype(np.float32)
    t = 0.05
    d = np.linalg.norm(s[:, None] - s[None], axis=-1)
    parent = list(range(len(s)))  # brute force: merge labels until stable
    changed = True
    while changed:
        changed = False
        for i, j in zip(*np.nonzero(d < t), strict=True):
            if parent[i] != parent[j]:
                parent[i] = parent[j] = min(parent[i], parent[j])
                changed = True
    brute = [[i for i in range(len(s)) if parent[i] == r] for r in sorted(set(parent))]
    assert signature_groups(s, threshold=t) == [g for g in brute if len(g) > 1]
    assert sorted(map(len, signature_groups(s, threshold=t))) == [2, 3, 5]
    assert max(d[i, j] for g in brute for i in g for j in g) > 2 * t  # linked by chains


def test_the_signature_cache_signs_each_unchanged_file_once(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    files = [write_image(tmp_path / f"{i}.png", cv2.resize(rng.random((8, 8, 3)), (32, 32)))
             for i in range(4)]
    cache = tmp_path / "cache" / "sig.npz"
    decoded: list[Path] = []

    def counting(path, *args, **kwargs):
        decoded.append(Path(path))
        return read_image_array(path, *args, **kwargs)

    monkeypatch.setattr(dedup, "read_image_array", counting)
    plain = dedup.file_signatures(files)
    first = dedup.file_signatures(files, cache=cache)
    assert cache.is_file() and np.array_equal(first, plain) and len(decoded) == 8
    decoded.clear()
    assert np.array_equal(dedup.file_signatures(files[::-1], cache=cache), plain[::-1])
    assert decoded == []  # all from the cache
    write_image(files[2], np.zeros((32, 32, 3)))  # rewritten: another size or time
    again = dedup.file_signatures(files, cache=cache)
    assert decoded == [files[2]] and not again[2].any() and np.array_equal(again[:2], plain[:2])
    cache.write_bytes(b"not an npz")  # a broken cache is rebuilt, not an error
    decoded.clear()
    assert np.array_equal(dedup.file_signatures(files, cache=cache), again)
    assert len(decoded) == 4 and np.load(cache)["sigs"].shape == (4, dedup.SIDE ** 2)


def test_no_near_duplicate_crosses_the_committed_protocol_splits(shared: Path) -> None:
    """configs/splits: the faces that choose checkpoints (val), report (test) and train
    (sharp-train) share no near-duplicate across lists."""
    from facesr.data.inputs import hq_files

    splits = Path(__file__).resolve().parents[2] / "configs" / "splits"
    side = {}
    for lst in sorted(splits.glob("*.txt")):
        for f in hq_files([lst]):
            if not f.exists() and f.parent.name == "hq-sharp256":  # made by sharp_splits.py
                f = shared / "data" / "faces_hq" / "london512" / f"{f.stem}.jpg"
            side[f] = lst.stem
    crossing = [[(f.name, side[f]) for f in g] for g in near_duplicate_groups(list(side))
                if len({side[f] for f in g}) > 1]
    assert crossing == []
