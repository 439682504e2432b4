"""PIQE: MATLAB's ``piqe`` reference values and properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facesr.metrics import piqe
from facesr.metrics.piqe import piqe_score


def test_matches_matlab_piqe(pairs, reference) -> None:
    # the reference is printed with 2 decimals: 0.005 is its rounding; measured max 0.0025
    got = [piqe(img) for img in pairs[0]]
    assert got == pytest.approx(reference("piqe"), abs=0.005)


def test_flat_image_scores_100_and_range() -> None:
    assert piqe(torch.full((3, 48, 64), 0.5)) == 100.0
    g = torch.Generator().manual_seed(0)
    assert 0.0 <= piqe(torch.rand(3, 64, 64, generator=g)) <= 100.0


def test_noise_on_a_clean_image_raises_the_score(pairs) -> None:
    clean = pairs[1][1]  # I04 reference
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    scores = [piqe((clean + s * noise).clamp(0, 1)) for s in (0.0, 0.05, 0.15)]
    assert scores == sorted(scores)


def test_padding_to_whole_blocks_and_bad_input() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 50)).astype(np.float64)
    # symmetric padding to 48x64 then scoring equals scoring the padded image itself
    padded = np.pad(img, ((0, 8), (0, 14)), mode="symmetric")
    assert piqe_score(img) == piqe_score(padded)
    with pytest.raises(ValueError, match="16 px block"):
        piqe_score(np.ones((15, 40)))
    with pytest.raises(ValueError, match="all-black"):
        piqe_score(np.zeros((32, 32)))
