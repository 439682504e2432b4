"""The blur direction read from step edges: it finds a known blur's major axis, calls a
round blur round, gives no reading without edges, and averages directions modulo 180."""

from __future__ import annotations

import numpy as np
import pytest

from facesr.degrade.edges import EdgeBlur, angle_difference, combine, edge_blur


@pytest.mark.parametrize("degrees", [30.0, 120.0])
def test_reads_the_direction_of_an_anisotropic_blur(step_edges, degrees: float) -> None:
    r = edge_blur(step_edges(degrees))
    assert r is not None and r.edges >= 200
    assert abs(angle_difference(r.angle, degrees)) < 6
    assert r.anisotropy > 0.2


def test_a_round_blur_reads_round(step_edges) -> None:
    r = edge_blur(step_edges(0.0, 2.0, 2.0))
    assert r is not None and r.anisotropy < 0.1


def test_no_edges_no_reading() -> None:
    assert edge_blur(np.full((64, 64, 3), 0.4, np.float32)) is None
    assert edge_blur(np.random.default_rng(0).random((64, 64)).astype(np.float32) * 0.02) is None


def test_directions_average_modulo_180() -> None:
    both = combine([EdgeBlur(1.0, 0.3, 1.0, 500), EdgeBlur(179.0, 0.3, 1.0, 500)])
    assert both is not None
    assert min(both["angle"], 180 - both["angle"]) < 0.5 and both["spread"] < 2
    assert combine([]) is None
    assert angle_difference(10.0, 170.0) == pytest.approx(20.0)
    assert angle_difference(170.0, 10.0) == pytest.approx(-20.0)
