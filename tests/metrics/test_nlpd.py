"""NLPD: the published reference values (NLP_dist.m on rgb2gray images) and properties."""

from __future__ import annotations

import pytest
import torch

from facesr.metrics import nlpd
from facesr.metrics.nlpd import dn_filters, laplacian_pyramid


def test_matches_the_authors_nlp_dist_m(pairs, reference) -> None:
    # 4 printed decimals (rounding 5e-5); measured max difference 3.5e-5
    assert nlpd(*pairs).tolist() == pytest.approx(reference("nlpd"), abs=5e-5)


def test_identical_images_score_zero_and_noise_raises_it() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 80, generator=g)
    assert nlpd(x, x).item() == 0.0
    noise = torch.randn(x.shape, generator=g)
    values = [nlpd((x + s * noise).clamp(0, 1), x).item() for s in (0.01, 0.03, 0.1)]
    assert values == sorted(values) and values[0] > 0


def test_symmetric_and_batched(pairs) -> None:
    dist, ref = pairs[0][:2], pairs[1][:2]
    torch.testing.assert_close(nlpd(dist, ref), nlpd(ref, dist))
    torch.testing.assert_close(nlpd(dist, ref)[1:], nlpd(dist[1:], ref[1:]))


def test_pyramid_sizes_and_filters() -> None:
    pyr = laplacian_pyramid(torch.rand(1, 1, 45, 64, dtype=torch.float64))
    assert [p.shape[-2:] for p in pyr] == [(45, 64), (23, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
    f = dn_filters()
    assert f.shape == (6, 5, 5) and f[0, 2, 4] == 0.0072 and f[:, 2, 2].eq(0).all()


def test_small_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="32 px minimum"):
        nlpd(torch.rand(1, 3, 31, 64), torch.rand(1, 3, 31, 64))
