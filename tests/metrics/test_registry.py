"""The METRICS registry: complete, consistent, and clear about missing weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesr.metrics import METRICS, MetricSpec, WeightsUnavailableError


def test_every_entry_is_a_complete_spec() -> None:
    assert {"psnr", "ssim", "ms_ssim", "niqe", "brisque", "nrqm", "pi", "nima"} <= set(METRICS)
    for name, spec in METRICS.items():
        assert isinstance(spec, MetricSpec), name
        assert spec.direction in ("higher", "lower"), name
        assert spec.range[0] < spec.range[1], name
        assert callable(spec.fn), name
        assert spec.fn.__doc__, f"{name} has no docstring"
    assert {n for n, s in METRICS.items() if s.needs_reference} == {"psnr", "ssim", "ms_ssim"}
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
