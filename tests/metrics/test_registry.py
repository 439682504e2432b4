"""The METRICS registry: complete, consistent, and clear about missing weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from facesr.metrics import METRICS, MetricSpec, Scorer, WeightsUnavailableError


def test_every_entry_is_a_complete_spec() -> None:
    assert {"psnr", "ssim", "ms_ssim", "niqe", "brisque", "nrqm", "pi", "nima", "lpips",
            "nlpd", "piqe", "dists"} <= set(METRICS)
    for name, spec in METRICS.items():
        assert isinstance(spec, MetricSpec), name
        assert spec.direction in ("higher", "lower", "zero"), name
        assert spec.range[0] < spec.range[1], name
        assert callable(spec.fn), name
        assert spec.fn.__doc__, f"{name} has no docstring"
    assert {n for n, s in METRICS.items() if s.needs_reference} == {
        "psnr", "ssim", "ms_ssim", "nlpd", "lpips", "dists", "identity", "identity_same",
        "color_r", "color_g", "color_b", "color_abs", "psnr_rgb"}
    assert METRICS["niqe"].needs_weights and METRICS["psnr"].needs_weights is None


@pytest.mark.parametrize(("name", "file"), [("nrqm", "NRQM_model.mat"),
                                            ("pi", "NRQM_model.mat"),
                                            ("nima", "nima_inception_v2_ava.pth")])
def test_unavailable_metrics_say_which_file_they_need(tmp_path: Path, name: str,
                                                     file: str) -> None:
    with pytest.raises(WeightsUnavailableError,
                       match=rf"weights not available: {name} needs {file} \(looked in "
                       rf"{tmp_path.resolve()}\)"):
        METRICS[name].fn(None, weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no folder given"):
        METRICS[name].fn(None)
    assert file in (METRICS[name].needs_weights or "")


def _image_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 192x192 smooth image (enough for MS-SSIM's 176 px and NIQE's two 96 px blocks) and a
    noisy copy."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 192), torch.linspace(0, 1, 192), indexing="ij")
    ref = torch.stack([xx, yy, (xx * yy).sqrt()]) * 0.8 + 0.1
    ref = (ref + 0.05 * torch.rand(ref.shape, generator=g)).clamp(0, 1)
    return (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1), ref


@pytest.mark.parametrize("where", ["shared", "empty"])
def test_every_metric_computes_or_says_its_weights_are_unavailable(
        where: str, shared: Path, tmp_path: Path, monkeypatch) -> None:
    """With the shared weights, or with nothing (no env folder, no user folder, no torch home),
    each registered metric either scores a small image in its range (full-reference ones best
    for the image itself) or raises WeightsUnavailableError at construction, nothing else."""
    monkeypatch.delenv("FACESR_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = shared / "weights" if where == "shared" else tmp_path / "empty"
    pred, ref = _image_pair()
    computed = []
    for name, spec in METRICS.items():
        try:
            scorer = Scorer([name], weights_dir=weights)
        except WeightsUnavailableError as e:
            assert "weights not available" in str(e), name
            continue
        value = scorer(pred, ref)[name]
        lo, hi = spec.range
        assert math.isfinite(value) and lo - 1e-6 <= value <= hi + 1e-6, (name, value)
        if spec.needs_reference:  # comparing an image with itself gives the best value
            best = scorer(ref, ref)[name]
            better = (best >= value if spec.direction == "higher" else
                      abs(best) <= abs(value) if spec.direction == "zero" else best <= value)
            assert better, (name, best, value)
        computed.append(name)
    always = {"psnr", "psnr_rgb", "ssim", "ms_ssim", "nlpd", "piqe", "color_r", "color_abs"}
    assert always <= set(computed)
    if where == "shared":
        assert {"niqe", "brisque"} <= set(computed)
