"""The identity loss: dlib's face-ID network rebuilt in torch gives dlib's descriptors, its
chips are dlib's chips, its gradient pulls a changed face back, and a file that is not the
network is refused naming it.

Faces: the London face set (../shared/data/faces_hq/london512), 160 px.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facesr.io import read_image_array, to_tensor, to_uint8
from facesr.losses.identity import (
    DlibFaceID,
    DlibModelError,
    chip_affine,
    extract_chips,
    face_chip_map,
    identity_loss,
    read_dlib_layers,
)
from facesr.metrics.identity import find_identity_models, load_identity


@pytest.fixture(scope="module")
def dlib_models():
    dlib = pytest.importorskip("dlib", reason="needs dlib: pip install -e \".[identity]\"")
    landmarks, recognition = find_identity_models()
    return (dlib, dlib.shape_predictor(str(landmarks)),
            dlib.face_recognition_model_v1(str(recognition)), recognition)


@pytest.fixture(scope="module")
def identity_model(dlib_models):
    return load_identity()


@pytest.fixture(scope="module")
def net(dlib_models) -> DlibFaceID:
    return DlibFaceID(dlib_models[3]).eval()


def _face(shared: Path, name: str, dlib_models) -> tuple[np.ndarray, list]:
    dlib, sp = dlib_models[:2]
    img = read_image_array(shared / "data" / "faces_hq" / "london512" / f"{name}.jpg")
    u8 = to_uint8(cv2.resize(img, (160, 160), interpolation=cv2.INTER_AREA))
    box = dlib.get_frontal_face_detector()(u8, 1)[0]
    return u8, sp(u8, box)


@pytest.mark.parametrize("name", ["n_001_03", "s_010_08"])
def test_descriptors_and_chips_are_dlibs(shared: Path, dlib_models, net, name: str) -> None:
    dlib, _, rec, _ = dlib_models
    u8, shape = _face(shared, name, dlib_models)
    chip = dlib.get_face_chip(u8, shape, 150, 0.25)
    ref = np.asarray(rec.compute_face_descriptor(chip))
    with torch.no_grad():
        ours = net(torch.from_numpy(np.asarray(chip)).permute(2, 0, 1)[None].float() / 255)
    assert np.abs(ours[0].numpy() - ref).max() < 1e-4
    maps = torch.from_numpy(chip_affine([(p.x, p.y) for p in shape.parts()]))[None]
    cut = extract_chips(to_tensor(u8.astype(np.float32) / 255)[None], maps)
    assert np.abs(cut[0].permute(1, 2, 0).numpy() * 255 - chip).mean() < 1.0
    with torch.no_grad():
        assert float(np.linalg.norm(net(cut)[0].numpy() - ref)) < 0.02  # dlib's 0.6: a person


@pytest.mark.parametrize("name", ["n_001_03", "s_010_08"])
def test_the_loss_aligns_the_face_the_metric_scores(shared: Path, dlib_models, net,
                                                    identity_model, name: str) -> None:
    u8, _ = _face(shared, name, dlib_models)
    image = u8.astype(np.float32) / 255
    metric = identity_model.descriptor(image, identity_model.face_box(image))
    cut = extract_chips(to_tensor(image)[None], torch.from_numpy(face_chip_map(u8))[None])
    with torch.no_grad():
        assert float(np.linalg.norm(net(cut)[0].numpy() - metric)) < 0.02
    # without a model: the metric's own (load_identity())
    np.testing.assert_array_equal(face_chip_map(u8, identity_model), face_chip_map(u8))


def test_gradient_pulls_a_blurred_face_back(shared: Path, dlib_models, net) -> None:
    u8, _ = _face(shared, "n_001_03", dlib_models)
    hr = to_tensor(u8.astype(np.float32) / 255)[None]
    maps = torch.from_numpy(face_chip_map(u8))[None]
    assert identity_loss(net, hr, hr, maps).item() < 1e-3
    blurred = to_tensor(cv2.GaussianBlur(u8, (0, 0), 3.0).astype(np.float32) / 255)[None]
    before = identity_loss(net, blurred, hr, maps).item()
    assert before > 0.05
    x = blurred.clone()
    for _ in range(5):  # small signed-gradient steps of 1 level
        x.requires_grad_(True)
        loss = identity_loss(net, x, hr, maps)
        (grad,) = torch.autograd.grad(loss, x)
        x = (x - grad.sign() / 255).clamp(0, 1).detach()
    assert identity_loss(net, x, hr, maps).item() < 0.8 * before


def test_a_file_that_is_not_the_network_is_refused(tmp_path: Path, dlib_models) -> None:
    junk = tmp_path / "model.dat"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(DlibModelError, match="model.dat: not dlib's face recognition"):
        read_dlib_layers(junk)
    cut = tmp_path / "cut.dat"
    cut.write_bytes(dlib_models[3].read_bytes()[:200_000])  # truncated inside a tensor
    with pytest.raises(DlibModelError, match="cut.dat"):
        read_dlib_layers(cut)
