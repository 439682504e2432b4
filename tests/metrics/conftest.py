"""Fixtures for the calibration set: 5 TID2013 pairs and the reference rows (../shared)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from facesr.io import read_image

NAMES = ("I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp")


@pytest.fixture(scope="session")
def reference(shared: Path) -> Callable[[str], list[float]]:
    """``reference("ssim")``: one row of calibration_summary.csv, in NAMES order."""
    with open(shared / "calibration" / "calibration_summary.csv", newline="") as f:
        rows = {r["Method"]: [float(r[n]) for n in NAMES] for r in csv.DictReader(f)}
    return rows.__getitem__


@pytest.fixture(scope="session")
def pairs(shared: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(distorted, reference) batches of the five pairs, each (5, 3, 384, 512)."""
    return tuple(torch.stack([read_image(shared / "calibration" / d / n) for n in NAMES])
                 for d in ("dist_dir", "ref_dir"))
