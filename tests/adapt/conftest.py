"""Shared inputs of the ``facesr adapt`` tests: synthetic footage and faces, and one small
camera folder made with the tiny ``nearest`` base model (2 iterations)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app

runner = CliRunner()


def _texture(seed: int, h: int, w: int) -> np.ndarray:
    """Blobs and edges at several scales, RGB uint8."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128, np.uint8)
    for _ in range(60):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), int(rng.integers(2, max(3, w // 6))), c, -1)
    return img


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapt-in")
    foot = d / "footage"
    foot.mkdir()
    for i in range(3):
        cv2.imwrite(str(foot / f"still{i}.png"), _texture(i, 96, 128))
    cv2.imwrite(str(foot / "flat.png"), np.full((96, 128, 3), 90, np.uint8))
    rng = np.random.default_rng(9)  # a plain wall with sensor noise: what the noise pool wants
    wall = np.clip(120 + rng.normal(0, 4, (128, 160, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(foot / "wall.png"), wall)
    faces = d / "faces"
    faces.mkdir()
    for i in range(30):
        cv2.imwrite(str(faces / f"face{i:02d}.png"), _texture(100 + i, 128, 128))
    return foot, faces


def _adapt(foot, faces, out, *extra, base):
    return runner.invoke(app, ["adapt", str(foot), "--out", str(out), "--hq", str(faces),
                               "--base", str(base), "--iters", "20", "--kernel-stills", "2",
                               "--jobs", "1", *extra])


@pytest.fixture(scope="module")
def camera(inputs, nearest, tmp_path_factory):
    foot, faces = inputs
    out = tmp_path_factory.mktemp("adapt") / "cam"
    r = _adapt(foot, faces, out, "--iterations", "2", base=nearest)
    assert r.exit_code == 0, r.output
    return out, r.output


@pytest.fixture(scope="session")
def texture():
    """``texture(seed, h, w)``: a textured RGB uint8 image."""
    return _texture


@pytest.fixture(scope="session")
def run_adapt():
    """``run_adapt(footage, faces, out, *options, base=...)``: ``facesr adapt`` in-process."""
    return _adapt
