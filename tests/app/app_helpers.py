"""Helpers of the app tests: the session token, tiny inputs (a face crop, a frame with a face),
waiting for a job. A module of its own (not conftest) so that test files can import it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TOKEN = "test-token-123"
SHARED = Path(os.environ.get("FACESR_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared")
              ).resolve()
FACE_SOURCE = SHARED / "data" / "faces_lq" / "gfpgan" / "gfpgan_00.jpg"


def make_face(path: Path) -> Path:
    """A 32x32 face crop: a real low-quality face from ../shared reduced by area resampling,
    or (without ../shared) a synthetic smooth image (face mode needs no detection)."""
    import cv2

    from facesr.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    if FACE_SOURCE.is_file():
        img = cv2.imread(str(FACE_SOURCE))
        cv2.imwrite(str(path), cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA))
    else:
        y, x = np.mgrid[0:32, 0:32] / 31.0
        write_image(path, np.stack([x, y, 0.5 * (x + y)], axis=-1).astype(np.float32))
    return path


def make_demo_face(path: Path) -> Path:
    """The demo's 48x48 surveillance-style face (NASA's public-domain portrait of Eileen Collins,
    scikit-image's ``astronaut``, degraded as ``facesr demo`` does): fit for screenshots."""
    from facesr.demo import demo_lr
    from facesr.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, demo_lr()[1])
    return path


def make_frame(path: Path) -> Path:
    """A 480x300 frame with one small face (about 35x45 px: ``astronaut`` shrunk to 200 px on
    a grey gradient), which the default detector finds: frame mode."""
    import importlib.resources

    import cv2

    from facesr.io import read_image_array, write_image

    img = read_image_array(str(importlib.resources.files("skimage") / "data" / "astronaut.png"))
    canvas = np.zeros((300, 480, 3), np.float32)
    canvas[:] = np.linspace(0.25, 0.6, 480, dtype=np.float32)[None, :, None]
    canvas[60:260, 200:400] = cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, canvas)
    return path


def wait_job(client, app, job_id: str, timeout: float = 300) -> dict:
    app.state.runner.wait(job_id, timeout)
    return client.get(f"/api/jobs/{job_id}").json()
