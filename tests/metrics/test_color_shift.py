"""color_r/g/b and color_abs: signed mean colour differences in 8-bit levels."""

from __future__ import annotations

import torch

from facesr.metrics import METRICS, Scorer
from facesr.metrics.color import color_abs, color_shift


def test_a_uniform_tint_is_measured_exactly_per_channel() -> None:
    ref = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    tint = torch.tensor([2.0, -1.0, 0.5]).view(1, 3, 1, 1) / 255
    d = color_shift(ref + tint, ref)
    assert torch.allclose(d, torch.tensor([[2.0, -1.0, 0.5]] * 2, dtype=d.dtype), atol=1e-6)
    assert torch.allclose(color_abs(ref + tint, ref), torch.full((2,), 3.5 / 3,
                                                                  dtype=d.dtype), atol=1e-6)


def test_detail_without_a_mean_change_is_no_shift() -> None:
    ref = torch.full((1, 3, 16, 16), 0.5)
    checker = (torch.arange(16).view(1, 16) + torch.arange(16).view(16, 1)) % 2 * 0.2 - 0.1
    assert color_abs(ref + checker, ref).item() < 1e-4  # float32 rounding only


def test_registered_with_zero_direction_and_scored() -> None:
    assert {METRICS[f"color_{c}"].direction for c in "rgb"} == {"zero"}
    assert METRICS["color_abs"].direction == "lower"
    ref = torch.full((3, 24, 24), 0.4)
    s = Scorer(["color_r", "color_g", "color_b", "color_abs"], crop_border=4)
    out = s(ref + torch.tensor([1.0, 0.0, -3.0]).view(3, 1, 1) / 255, ref)
    assert round(out["color_r"], 6) == 1.0 and round(out["color_b"], 6) == -3.0
    assert abs(out["color_abs"] - 4 / 3) < 1e-6


def test_psnr_rgb_sees_a_tint_that_psnr_y_barely_does() -> None:
    ref = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.6 + 0.2
    # a tint that keeps Y almost unchanged: red up, green down in the ratio of Y's weights
    tint = torch.tensor([0.05, -0.05 * 65.481 / 128.553, 0.0]).view(3, 1, 1)
    s = Scorer(["psnr", "psnr_rgb"])(ref + tint, ref)
    assert s["psnr"] > 60 and s["psnr_rgb"] < 35
