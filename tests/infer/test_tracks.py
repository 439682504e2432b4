"""Face tracks: ids across frames, gaps, landmarks, detection order."""

from __future__ import annotations

import pytest

from facesr.infer.detectors import Face
from facesr.infer.tracks import FaceTracker, iou, link


def _face(x: float, y: float, size: float = 40, *, eyes_dx: float | None = None) -> Face:
    """A face box; with ``eyes_dx`` five landmarks, shifted sideways by that much (a head
    turned) from their frontal places."""
    lms = None
    if eyes_dx is not None:
        s, d = size, eyes_dx
        lms = ((x + .3 * s + d, y + .4 * s), (x + .7 * s + d, y + .4 * s),
               (x + .5 * s + d, y + .6 * s), (x + .35 * s + d, y + .8 * s),
               (x + .65 * s + d, y + .8 * s))
    return Face(x, y, size, size, 0.9, lms)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0


def test_two_faces_moving_in_a_straight_line_keep_their_ids():
    frames = {2 * i: [_face(10 + 12 * i, 50), _face(300 - 12 * i, 60, 30)] for i in range(10)}
    tracks = link(frames)
    assert [t.id for t in tracks] == [0, 1]
    assert tracks[0].frames == tracks[1].frames == sorted(frames)  # sparse frame numbers
    assert [f.x for f in tracks[0].faces] == [10 + 12 * i for i in range(10)]
    assert [f.x for f in tracks[1].faces] == [300 - 12 * i for i in range(10)]


def test_fast_motion_is_followed_through_a_gap():
    # 30 px per sampled frame on a 40 px face: IoU with the last box is 1/7 (under min_iou) but
    # the centres are 0.75 face sides apart; after the gap the boxes are 60 px apart, and the
    # constant-velocity prediction keeps the track
    frames = {i: [] if i == 3 else [_face(30 * i, 0)] for i in range(6)}
    assert [t.frames for t in link(frames)] == [[0, 1, 2, 4, 5]]
    far = {i: [] if i == 3 else [_face(50 * i, 0)] for i in range(6)}  # more than max_dist
    assert [t.frames for t in link(far)] == [[i] for i in far if i != 3]


def test_tracks_survive_a_missed_detection():
    tracker = FaceTracker(max_gap=2)
    assert tracker.update(0, [_face(0, 0), _face(200, 0)]) == [0, 1]
    assert tracker.update(5, [_face(2, 0)]) == [0]  # face 1 missed (stride 5: gap of 1)
    assert tracker.update(10, [_face(200, 0), _face(4, 0)]) == [1, 0]
    assert [t.frames for t in tracker.tracks] == [[0, 5, 10], [0, 10]]


def test_a_face_missing_longer_than_max_gap_gets_a_new_id():
    frames = {i: [_face(100, 100)] if i in (0, 1, 4, 8) else [] for i in range(9)}
    # 1 -> 4: two frames missed (= max_gap 2), kept; 4 -> 8: three missed, a new track
    assert [t.frames for t in link(frames, max_gap=2)] == [[0, 1, 4], [8]]
    assert [t.frames for t in link(frames, max_gap=3)] == [[0, 1, 4, 8]]
    assert [t.frames for t in link(frames, max_gap=0)] == [[0, 1], [4], [8]]


def test_crossing_faces_keep_their_ids_when_landmarks_disambiguate():
    # two overlapping faces, one looking left, one right; in frame 1 the boxes jitter so that
    # each is nearer the other's last box, but the landmarks stay where they were
    f0 = [_face(100, 100, eyes_dx=0), _face(110, 100, eyes_dx=10)]
    f1 = [_face(108, 100, eyes_dx=-8), _face(102, 100, eyes_dx=18)]
    assert f1[0].landmarks == f0[0].landmarks and f1[1].landmarks == f0[1].landmarks
    tracker = FaceTracker()
    assert tracker.update(0, f0) == [0, 1]
    assert tracker.update(1, f1) == [0, 1]
    boxes_only = FaceTracker(point_weight=0.0)  # IoU alone swaps them
    assert boxes_only.update(0, f0) == [0, 1]
    assert boxes_only.update(1, f1) == [1, 0]


def test_ids_do_not_depend_on_the_detection_order_within_a_frame():
    seq = [[_face(0, 0), _face(100, 0), _face(200, 0)],
           [_face(203, 1), _face(4, 2), _face(101, 0)],
           [_face(206, 2), _face(8, 3)],
           [_face(300, 300), _face(10, 4), _face(102, 0), _face(209, 3)]]
    a, b = FaceTracker(), FaceTracker()
    for i, faces in enumerate(seq):
        ids = a.update(i, faces)
        rev = b.update(i, faces[::-1])
        assert rev == ids[::-1]
    assert [t.frames for t in a.tracks] == [[0, 1, 2, 3], [0, 1, 3], [0, 1, 2, 3], [3]]


def test_frames_must_increase():
    tracker = FaceTracker()
    tracker.update(3, [])
    with pytest.raises(ValueError, match="increase"):
        tracker.update(3, [])
    with pytest.raises(ValueError, match="max_gap"):
        FaceTracker(max_gap=-1)
