"""Near-duplicate images: a compact signature per image, and groups of images that match.

Signature (:func:`signature`): BT.601 luma area-downscaled to 16x16 (whatever the aspect
ratio), minus its mean, divided by its norm: a unit vector of 256 numbers. Two images'
*distance* is the Euclidean distance of their signatures, ``sqrt(2 - 2r)`` with ``r`` the
correlation of their thumbnails: 0 for the same thumbnail, about 1.4 for unrelated ones.
Area resampling averages away what re-encoding and resizing change (JPEG error, resampling
ringing); the normalisation ignores brightness and contrast changes. A continuous distance
lets the threshold be measured. A 64-bit DCT pHash could not be: aligned faces share their
low frequencies, so the neutral and smiling photos of one person in ``london512`` can hash
the same, and two different people can hash closer than a JPEG quality-50 copy of one
photo. A 32x32 thumbnail separated the cases below no better than 16x16, at 4 times the cost.

Threshold (:data:`DUPLICATE_DISTANCE` = 0.04), from distances measured on
``../shared/data/faces_hq`` (``benchmarks/dedup.py``): copies re-encoded at JPEG quality
90 / 75, resized by one pixel and back, or both read at most 0.006 from their original, and
at quality 50 at most 0.02. The neutral and smiling photos of one person in ``london512``
(same studio, pose and framing) read 0.064 or more, different people 0.23 or more. So copies
of one photo are grouped; another photo of the same person is not (a person is not a
duplicate: pass person groups to the split yourself). Not caught: mirrored copies, re-crops
of more than about half a percent of the side (a 1-pixel shift of a 200 px face moves the
signature as much as a smile does), strong tone edits.

Groups are the connected components of "distance under the threshold" (union-find), so a
chain of consecutive video frames becomes one group. A flat (constant) image has a zero
signature and is never grouped.

Signing decodes every file (29 s for UTKFace's 9,689 on one thread), so signatures can be
kept in a cache file (:func:`signature_cache`), keyed by each file's absolute path, size and
modification time: training uses it, so a resumed or repeated run signs only new files.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from facesr.io import atomic_write_bytes, luma, read_image_array

log = logging.getLogger(__name__)

SIDE = 16  # signature thumbnail side (px)
DUPLICATE_DISTANCE = 0.04  # signatures closer than this are near-duplicates
CHUNK = 1024  # side of the blocks of the pairwise comparison


def signature(img: np.ndarray) -> np.ndarray:
    """The image's near-duplicate signature (see module docs).

    Shape: img (H, W, 3) float in [0, 1] -> (SIDE * SIDE,) float32, unit norm (or zeros).
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB HWC image, got shape {img.shape}")
    y = luma(img)
    t = cv2.resize(y, (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    t -= t.mean()
    norm = np.linalg.norm(t)
    return (t / norm if norm > 1e-6 else np.zeros_like(t)).astype(np.float32)


def signature_cache() -> Path:
    """The default cache file of :func:`file_signatures`: ``$FACESR_CACHE/signatures.npz``,
    else ``$XDG_CACHE_HOME/facesr/...``, else ``~/.cache/facesr/...``."""
    root = os.environ.get("FACESR_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facesr"
    return Path(root) / "signatures.npz"


def file_signatures(files: Sequence[str | os.PathLike], *,
                    cache: str | os.PathLike | None = None) -> np.ndarray:
    """Signatures of image files, decoded by :func:`facesr.io.read_image_array`.

    Args:
        cache: an ``.npz`` file of signatures already computed (see module docs); read when it
            exists (an unreadable one is ignored), rewritten atomically with the new ones.
            None: no cache.

    Raises:
        InputError: a file that cannot be read.

    Shape: -> (len(files), SIDE * SIDE).
    """
    known: dict[str, np.ndarray] = {}
    if cache is not None and Path(cache).is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if z["sigs"].shape[1:] == (SIDE * SIDE,):
                    known = dict(zip(z["keys"].tolist(), z["sigs"], strict=True))
        except (OSError, ValueError, KeyError):
            known = {}  # a broken cache is rebuilt
    out = np.zeros((len(files), SIDE * SIDE), np.float32)
    added = 0
    for i, f in enumerate(files):
        key = _cache_key(f) if cache is not None else ""
        if key in known:
            out[i] = known[key]
            continue
        out[i] = signature(read_image_array(f))
        if cache is not None:
            known[key] = out[i]
            added += 1
    if cache is not None and added:
        buf = io.BytesIO()
        keys = list(known)
        np.savez(buf, keys=np.array(keys, dtype=str),
                 sigs=np.stack([known[k] for k in keys]).astype(np.float32))
        try:
            atomic_write_bytes(cache, buf.getvalue())
        except OSError as e:  # a read-only home: work on without the cache
            log.warning("cannot write the signature cache %s: %s", cache, e)
    return out


def _cache_key(f: str | os.PathLike) -> str:
    st = os.stat(f)
    return f"{Path(f).absolute()}|{st.st_size}|{st.st_mtime_ns}"


def signature_groups(sigs: np.ndarray, *, threshold: float = DUPLICATE_DISTANCE
                     ) -> list[list[int]]:
    """Groups of rows of ``sigs`` linked by distances under ``threshold`` (union-find).

    Compares every pair, in blocks of :data:`CHUNK` x :data:`CHUNK` pairs (one matrix
    product each), so memory does not grow with N squared.

    Returns:
        Groups of two or more row indices, each ascending, ordered by their first index.

    Shape: sigs (N, D), rows of unit norm (or zero).
    """
    if sigs.ndim != 2:
        raise ValueError(f"expected signatures of shape (N, D), got {sigs.shape}")
    if not 0.0 < threshold < 2.0:
        raise ValueError(f"threshold must be in (0, 2), got {threshold}")
    s = np.ascontiguousarray(sigs, dtype=np.float32)
    n = len(s)
    min_dot = 1.0 - threshold * threshold / 2.0  # |a - b| < t  <=>  a.b > 1 - t^2/2

    def close_pairs() -> Iterator[tuple[int, int]]:
        for a in range(0, n, CHUNK):
            for b in range(a, n, CHUNK):  # blocks on and above the diagonal
                close = s[a:a + CHUNK] @ s[b:b + CHUNK].T > min_dot
                rows, cols = np.nonzero(np.triu(close, k=1) if a == b else close)
                yield from zip((rows + a).tolist(), (cols + b).tolist(), strict=True)

    return [g for g in components(n, close_pairs()) if len(g) > 1]


def components(n: int, links: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The connected components of items ``0 .. n-1`` under ``links`` (union-find), every item
    in one, each ascending, ordered by their first item.

    >>> components(5, [(3, 1), (4, 3)])
    [[0], [1, 3, 4], [2]]
    """
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in links:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(find(i), []).append(i)
    return list(members.values())


def near_duplicate_groups(files: Sequence[str | os.PathLike], *,
                          threshold: float = DUPLICATE_DISTANCE,
                          cache: str | os.PathLike | None = None) -> list[list[Path]]:
    """Groups of near-duplicate image files (see module docs for what counts; ``cache``: see
    :func:`file_signatures`).

    The result depends on the set of files, not their order (they are compared in sorted
    order; a path given twice counts once).

    Raises:
        InputError: a file that cannot be read.

    Returns:
        Groups of two or more paths, each sorted, ordered by their first path.
    """
    uniq = sorted({Path(f) for f in files}, key=str)
    groups = signature_groups(file_signatures(uniq, cache=cache), threshold=threshold)
    return [[uniq[i] for i in g] for g in groups]
