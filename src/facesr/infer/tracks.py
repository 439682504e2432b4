"""Face tracks: detections of the same face linked across video frames.

Rules (:class:`FaceTracker`):

- Frames are fed in order, one :meth:`FaceTracker.update` call per *sampled* frame, including
  frames with no faces. Gaps are counted in those calls, not in frame numbers: with
  ``--stride 5`` frames 0, 5, 10 are consecutive, and a face missing from frame 5 only has a
  gap of 1.
- Each live track predicts its box (and landmarks) for the new frame from its last box and a
  constant velocity per sampled frame measured from its last two detections.
- Distance between a track and a detection: the mean distance of the predicted landmarks to
  the detected ones (box centres where either has no landmarks), divided by the track's face
  side (sqrt(w*h)). A detection may join a track when the predicted box overlaps it by IoU >=
  ``min_iou`` or the distance is at most ``max_dist`` (this catches faces that move more
  than a third of their size between sampled frames). Match score:
  ``(1 - point_weight) * IoU + point_weight * (1 - distance / max_dist)`` (the second term
  floored at 0); detections and tracks are paired for the highest total score (Hungarian
  assignment), so landmarks tell apart faces whose boxes overlap.
- A track left without a detection survives ``max_gap`` sampled frames; after that it ends and
  a returning face starts a new track. Unmatched detections start new tracks.
- Track ids are integers from 0 in order of first appearance. Within a frame, detections are
  handled in a canonical order (by box, then score), so ids do not depend on the order in
  which a detector lists its faces.

Why no tracking library: OpenCV has single-object trackers on pixels only, and the box
trackers on PyPI (norfair, motpy, SORT ports) bring a Kalman filter package (filterpy,
unmaintained) for what is, with faces sampled every few frames, a constant-velocity step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from facesr.infer.detectors import Face

DEFAULT_MAX_GAP = 2
_FORBIDDEN = 1e6


@dataclass
class Track:
    """One face across frames: ``observations`` are (frame index, face) in frame order."""

    id: int
    observations: list[tuple[int, Face]] = field(default_factory=list)
    last_step: int = 0  # the update call (sampled frame) of the last detection
    prev_step: int = 0  # ... and of the one before it (for the velocity)

    @property
    def frames(self) -> list[int]:
        return [f for f, _ in self.observations]

    @property
    def faces(self) -> list[Face]:
        return [f for _, f in self.observations]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _predict(track: Track, step: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted box (x, y, w, h) and landmarks (5x2 or None) of ``track`` at ``step``."""
    last = track.observations[-1][1]
    box = np.array(last.box, dtype=np.float64)
    lms = None if last.landmarks is None else np.array(last.landmarks, dtype=np.float64)
    if len(track.observations) < 2:
        return box, lms
    prev = track.observations[-2][1]
    v = (box - np.array(prev.box)) / (track.last_step - track.prev_step)
    ahead = step - track.last_step
    shift = (v[:2] + v[2:] / 2) * ahead  # the box centre's motion
    out = box + v * ahead
    out[2:] = np.maximum(out[2:], 1.0)
    out[:2] = box[:2] + box[2:] / 2 + shift - out[2:] / 2
    if lms is not None:
        lms = lms + shift
    return out, lms


class FaceTracker:
    """Links the faces of successive sampled frames into tracks (rules: module docstring).

    Args:
        max_gap: sampled frames a track may go without a detection and still continue.
        min_iou: least IoU of the predicted box for a match on boxes alone.
        max_dist: most landmark (or box centre) distance, in face sides, for a match without
            enough overlap.
        point_weight: share of the distance term in the match score (0: IoU only).
    """

    def __init__(self, *, max_gap: int = DEFAULT_MAX_GAP, min_iou: float = 0.2,
                 max_dist: float = 1.0, point_weight: float = 0.5) -> None:
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.max_gap, self.min_iou = max_gap, min_iou
        if max_dist <= 0:
            raise ValueError(f"max_dist must be > 0, got {max_dist}")
        self.max_dist, self.point_weight = max_dist, point_weight
        self.tracks: list[Track] = []  # all tracks so far, by id
        self._live: list[Track] = []
        self._step = -1
        self._frame: int | None = None

    def _score(self, track: Track, face: Face) -> float:
        box, lms = _predict(track, self._step)
        overlap = iou(tuple(box), face.box)
        if lms is None or face.landmarks is None:
            lms = np.array([box[:2] + box[2:] / 2])
            seen = np.array([[face.x + face.w / 2, face.y + face.h / 2]])
        else:
            seen = np.array(face.landmarks, dtype=np.float64)
        side = math.sqrt(box[2] * box[3])
        dist = float(np.linalg.norm(lms - seen, axis=1).mean()) / side
        if overlap < self.min_iou and dist > self.max_dist:
            return -1.0
        w = self.point_weight
        return (1 - w) * overlap + w * max(0.0, 1.0 - dist / self.max_dist)

    def update(self, frame: int, faces: Sequence[Face]) -> list[int]:
        """Add one sampled frame's faces; returns the track id of each face, in input order."""
        if self._frame is not None and frame <= self._frame:
            raise ValueError(f"frames must increase: {frame} after {self._frame}")
        self._frame, self._step = frame, self._step + 1
        self._live = [t for t in self._live if self._step - t.last_step <= self.max_gap + 1]
        order = sorted(range(len(faces)),
                       key=lambda i: (faces[i].box, faces[i].score, faces[i].landmarks or ()))
        ids: list[int] = [-1] * len(faces)
        taken: dict[int, Track] = {}
        if self._live and order:
            score = np.array([[self._score(t, faces[i]) for i in order] for t in self._live])
            rows, cols = linear_sum_assignment(np.where(score < 0, _FORBIDDEN, -score))
            for r, c in zip(rows, cols, strict=True):
                if score[r, c] >= 0:
                    taken[order[c]] = self._live[r]
        for i in order:
            track = taken.get(i)
            if track is None:
                track = Track(len(self.tracks))
                self.tracks.append(track)
                self._live.append(track)
            track.observations.append((frame, faces[i]))
            track.prev_step, track.last_step = track.last_step, self._step
            ids[i] = track.id
        return ids


def link(detections_by_frame: Mapping[int, Sequence[Face]], **params: float) -> list[Track]:
    """Tracks of a whole sequence: ``{frame index: faces}`` with one entry per sampled frame
    (frames with no faces as empty entries, or their gaps are not counted). ``params``:
    keyword arguments of :class:`FaceTracker`. Returns the tracks by id."""
    tracker = FaceTracker(**params)
    for frame in sorted(detections_by_frame):
        tracker.update(frame, detections_by_frame[frame])
    return tracker.tracks
