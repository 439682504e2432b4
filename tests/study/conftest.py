"""A tiny fake ``facesr evaluate`` results folder: 8x8 inputs, 32x32 outputs of 3 methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesr.io import write_image

# names that cannot occur by chance in base64 image data or the page's own text
METHODS = {"bicubicq": 6.5, "esrganzz": 4.25, "oursxmodel": 3.0}  # method -> mean NIQE


def make_results(root: Path, n_images: int = 2, methods: dict[str, float] = METHODS) -> Path:
    """``root/images/{lr,hr,<method>}/face<k>.png``, ``table.csv`` and ``per_image.csv``."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n_images):
        stem = f"face{k}"
        write_image(root / "images" / "lr" / f"{stem}.png", rng.random((8, 8, 3)))
        write_image(root / "images" / "hr" / f"{stem}.png", rng.random((32, 32, 3)))
        for i, (m, v) in enumerate(methods.items()):
            img = np.full((32, 32, 3), 0.2 + 0.25 * i, np.float32)
            img[: 4 + 4 * k] = rng.random(3)
            write_image(root / "images" / m / f"{stem}.png", img)
            rows.append(f"{stem},{m},{v + 0.1 * k:.3f}")
    (root / "per_image.csv").write_text("image,method,niqe\n" + "\n".join(rows) + "\n")
    # as `facesr evaluate` writes it: <metric>_mean, _ci_low, _ci_high, _n per metric
    table = "".join(f"{m},{n_images},{v},{v - 0.5},{v + 0.5},{n_images},0.01\n"
                    for m, v in methods.items())
    (root / "table.csv").write_text(
        "method,n,niqe_mean,niqe_ci_low,niqe_ci_high,niqe_n,seconds_per_image\n" + table
        + "nothing,0,,,,0,\n")
    return root


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "results")


@pytest.fixture()
def results_with():
    """``make_results`` itself, for tests that need other images or methods."""
    return make_results
