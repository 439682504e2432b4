"""One still: pick face or frame mode, run the model, resample to ``--outscale``, add the
``--save-lr`` and ``--compare`` images, and write them all (each stamped with its metadata),
all or nothing; returns the record's mode, faces, outputs and timings.

Scale. The network is x4; ``--outscale X`` resamples its output to ``round(X * W) x round(X * H)``
of the image the model got (face crops: of the crop box), with OpenCV's area filter when
shrinking and Lanczos-4 when enlarging (Real-ESRGAN's ``--outscale`` does the same after its x4
model). X = 4 (the default) writes the network's output as it is. ``--max-side N`` first
area-downscales an input whose longer side is above N (``facesr.eval.inputs.shrink``, as
``evaluate real --max-side``; ``batch``); sizes, boxes and ``--outscale`` are then relative to
the shrunk image, which the record holds as ``input.shrunk_to``.

A still is all or nothing: when one of its files cannot be written its other files are removed
(``_remove``) and ``_WriteError`` stops the batch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from facesr.cli.upscale.layout import _final_size, _join
from facesr.demo import side_by_side
from facesr.infer.burst import upscale_burst
from facesr.infer.faces import Face
from facesr.infer.pipeline import SMALL, choose_mode, upscale_face, upscale_frame
from facesr.io import sha256_file, to_tensor, write_image


class _WriteError(Exception):
    """A file in --out cannot be written (disk full, read-only folder): the batch stops."""

    def __init__(self, path: Path, e: OSError) -> None:
        super().__init__(f"{path}: cannot write ({e.strerror or e})")


def _remove(out_dir: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            (out_dir / name).unlink(missing_ok=True)


def _rescale(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (3, h, w) output resampled to ``size`` (width, height): area when shrinking, Lanczos-4
    when enlarging; as it is when it has that size already."""
    w, h = size
    if (img.shape[-1], img.shape[-2]) == (w, h):
        return img
    arr = img.detach().float().cpu().permute(1, 2, 0).numpy()
    shrinking = w <= img.shape[-1] and h <= img.shape[-2]
    arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA if shrinking
                     else cv2.INTER_LANCZOS4)
    return torch.from_numpy(np.clip(arr, 0.0, 1.0)).permute(2, 0, 1).contiguous()


def _timer(timings: dict[str, float]) -> Callable[[str], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def timed(stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        timings[stage] = round(timings.get(stage, 0.0) + 1000 * (time.perf_counter() - t0), 1)

    return timed


def _face_record(face: Face) -> dict:
    return {"box": [round(v, 2) for v in face.box], "score": round(face.score, 4),
            "landmarks": None if face.landmarks is None
            else [[round(x, 2), round(y, 2)] for x, y in face.landmarks]}


def _process(arr: np.ndarray, runner, det, out_dir: Path, base: str, settings: dict,
             video: bool, stamp: dict[str, str] | None = None, *,
             neighbours: list[tuple[int, np.ndarray]] | None = None,
             frame: int | None = None) -> dict:
    """Run one still; write its images (each carrying the text ``stamp``, see
    ``facesr.provenance.image_metadata``); return the record's mode, faces, outputs (with
    their SHA-256), timings. ``neighbours`` (--fuse): other frames (index, RGB) of the video
    around ``frame``; each face (face mode: the whole still) is then fused from all of them
    (``facesr.infer.burst``) and its record gets ``fused``."""
    timings: dict[str, float] = {}
    timer = _timer(timings)
    mode = settings["mode"]
    t0 = time.perf_counter()
    image = to_tensor(arr)
    size = (arr.shape[1], arr.shape[0])
    faces: list[Face] = []
    if mode == "face":
        picked, reason = "face", "--mode face"
    elif mode == "frame":
        picked, reason = "frame", "--mode frame"
    elif video:
        picked, reason = "frame", "video frame"
    elif max(size) <= SMALL:
        picked, reason = choose_mode(size, [])
    else:
        with timer("detect"):
            faces = det.detect(arr)
        picked, reason = choose_mode(size, faces)
    outputs, face_recs = [], [_face_record(f) for f in faces]
    tile, overlap = settings["tile"], settings["overlap"]
    scale, sfx, fmt = settings["outscale"], settings["suffix"], settings["format"]
    others: list[Face] = []
    nb_frames = [i for i, _ in neighbours or []]
    nb_images = [to_tensor(a) for _, a in neighbours or []]
    fused = None
    if picked == "face":
        with timer("sr"):
            if nb_images:
                burst = upscale_burst([image, *nb_images], reference=0, model=runner,
                                      tile=tile, overlap=overlap,
                                      lock_colors=settings["color_lock"])
                sr, fused = burst.image, _fused_record(burst, frame, nb_frames)
            else:
                sr = upscale_face(image, runner, tile=tile, overlap=overlap,
                                  lock_colors=settings["color_lock"])
        with timer("resample"):
            sr = _rescale(sr, _final_size(size, scale))
        outputs.append((f"{_join(base, sfx)}.{fmt}", "image", sr))
        outputs += _extras(settings, base, image, sr)
    else:
        found = faces if mode == "auto" and not video else None
        whole = settings["save_frame"]
        if found is None and (whole == "faces" or settings["only_center_face"]):
            with timer("detect"):  # detect first: to keep the centre face, to know if any
                found = det.detect(arr)
        if settings["only_center_face"] and len(found) > 1:
            keep = _center_face(found, size)
            found, others = [keep], [f for f in found if f is not keep]
        if whole == "faces":  # the whole x4 frame only where a face is found
            whole = bool(found)
        result = upscale_frame(image, runner, det, margin=settings["margin"],
                               whole_frame=bool(whole), background=settings["background"],
                               tile=tile, overlap=overlap, lock_colors=settings["color_lock"],
                               faces=found, timer=timer, neighbours=nb_images or None)
        face_recs = []
        for k, f in enumerate(result.faces):
            x, y, w, h = f.box
            with timer("resample"):
                crop = _rescale(f.image, _final_size((w, h), scale))
            name = f"{_join(base, f'face{k}', sfx)}.{fmt}"
            outputs.append((name, "face", crop))
            outputs += _extras(settings, f"{base}_face{k}", image[:, y:y + h, x:x + w], crop)
            face_recs.append({**_face_record(f.face), "crop_box": list(f.box), "output": name,
                              **({} if f.burst is None else
                                 {"fused": _fused_record(f.burst, frame, nb_frames)})})
        if result.frame is not None:
            with timer("resample"):
                frame = _rescale(result.frame, _final_size(size, scale))
            outputs.append((f"{_join(base, 'frame', sfx)}.{fmt}", "frame", frame))
    digests = []
    with timer("write"):
        for k, (name, _, img) in enumerate(outputs):
            try:
                write_image(out_dir / name, img, metadata=stamp)
                digests.append(sha256_file(out_dir / name))  # the file as written
            except OSError as e:
                _remove(out_dir, [n for n, _, _ in outputs[:k + 1]])  # all or nothing
                raise _WriteError(out_dir / name, e) from None
            except ValueError:  # e.g. a format that cannot carry the metadata
                _remove(out_dir, [n for n, _, _ in outputs[:k]])
                raise
    timings["total"] = round(1000 * (time.perf_counter() - t0), 1)
    return {"mode": picked, "mode_reason": reason, "faces": face_recs,
            **({} if fused is None else {"fused": fused}),
            **({"other_faces": [_face_record(f) for f in others]} if others else {}),
            "outputs": [{"file": n, "kind": k, "size": [img.shape[-1], img.shape[-2]],
                         "sha256": digest} for (n, k, img), digest in zip(outputs, digests,
                                                                          strict=True)],
            "timings_ms": timings}


def _fused_record(burst, frame: int | None, nb_frames: list[int]) -> dict:
    """What a fused output was made of: the frames used (this one first), the ones rejected
    and why, and each frame's registration score (ECC correlation with this frame's crop,
    1.0 for itself; None where registration failed)."""
    frames = [frame, *nb_frames]
    return {"frames_used": [frames[i] for i in burst.used],
            "rejected": [{"frame": frames[i], "reason": why} for i, why in burst.rejected],
            "registration": [{"frame": f, "ecc": None if s is None else round(float(s), 4)}
                             for f, s in zip(frames, burst.scores, strict=True)]}


def _center_face(faces: list[Face], size: tuple[int, int]) -> Face:
    """--only-center-face: the face whose box centre is closest to the image centre (GFPGAN's
    rule); the first of equals."""
    cx, cy = size[0] / 2, size[1] / 2
    return min(faces, key=lambda f: (f.x + f.w / 2 - cx) ** 2 + (f.y + f.h / 2 - cy) ** 2)


def _extras(settings: dict, stem: str, lr: torch.Tensor, sr: torch.Tensor
            ) -> list[tuple[str, str, torch.Tensor]]:
    """--save-lr and --compare of one output ``sr`` made from ``lr`` (the pixels the model
    got): ``<stem>_lr.png`` and ``<stem>_compare.png`` (``lr`` enlarged to ``sr``'s height by
    nearest neighbour, a gap, ``sr``; each under a label), as (name, kind, image)."""
    made = []
    if settings["save_lr"]:
        made.append((f"{stem}_lr.png", "lr", lr))
    if settings["compare"]:
        scale = settings["outscale"]
        panel = side_by_side([(f"input {lr.shape[-1]}x{lr.shape[-2]} (nearest)", lr),
                              (f"facesr x{scale:g}: details synthesised", sr)],
                             height=sr.shape[-2])
        made.append((f"{stem}_compare.png", "compare", to_tensor(panel)))
    return made
