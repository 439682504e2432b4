"""ONNX export (``facesr export onnx``) and the onnxruntime backend match PyTorch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: "
                    "pip install onnxruntime==1.32.0")
pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnx and onnxscript: "
                    "pip install onnx==1.23.2 onnxscript==0.7.2")

from facesr.cli import app  # noqa: E402
from facesr.infer.onnx_backend import (  # noqa: E402
    OnnxRunner,
    default_threads,
    load_onnx,
    session_options,
)
from facesr.io import read_image_array, write_image  # noqa: E402
from facesr.models import RRDBNet, save_rrdb  # noqa: E402

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[RRDBNet, Path, Path]:
    """A tiny model file and its ONNX export made by the CLI (one export for the module)."""
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    net = RRDBNet(**TINY).eval()
    for p in net.parameters():  # larger than the 0.1-scaled init, for a sharper comparison
        p.data.mul_(4.0)
    weights = save_rrdb(folder / "tiny.safetensors", net)
    onnx = folder / "tiny.onnx"
    r = runner.invoke(app, ["export", "onnx", "--model", str(weights), "--out", str(onnx)])
    assert r.exit_code == 0, r.output
    assert f"wrote {onnx}" in r.output.replace("\n", "")
    return net, weights, onnx


@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (1, 3, 9, 64), (2, 3, 12, 12)])
def test_onnxruntime_matches_torch_for_any_size(exported, shape):
    net, _, onnx = exported
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x)
    y = OnnxRunner(onnx)(x)
    assert y.shape == ref.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
    assert (y - ref).abs().max() < 1e-3


def test_export_is_dynamic_and_records_its_source(exported):
    _, weights, onnx = exported
    run, info = load_onnx(onnx)
    assert run.session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert run.metadata["facesr.model_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert json.loads(run.metadata["facesr.arch"])["num_block"] == 1
    assert info.sha256 == hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert info.architecture == "RRDBNet" and "tiny.safetensors" in info.source


def test_session_uses_all_graph_optimisations_and_the_allowed_cores():
    import onnxruntime as ort

    so = session_options()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.intra_op_num_threads == default_threads() and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(threads=1).intra_op_num_threads == 1


def test_upscale_cli_with_onnx_backend_matches_torch_backend(exported, tmp_path):
    _, weights, onnx = exported
    img = torch.rand(3, 21, 27, generator=torch.Generator().manual_seed(1))
    write_image(tmp_path / "in" / "face.png", img)
    for backend, model in (("torch", weights), ("onnx", onnx)):
        r = runner.invoke(app, ["upscale", str(tmp_path / "in"), "--out",
                                str(tmp_path / backend), "--model", str(model), "--backend",
                                backend, "--mode", "face", "--precision", "fp32"])
        assert r.exit_code == 0, r.output
    a, b = (read_image_array(next((tmp_path / k).glob("*_x4.png"))) for k in ("torch", "onnx"))
    assert a.shape == b.shape == (84, 108, 3)
    assert abs(a - b).max() <= 1 / 255 + 1e-6  # 8-bit rounding only
    rec = json.loads(next((tmp_path / "onnx").glob("*.json")).read_text())
    assert rec["settings"]["backend"] == "onnx"
    assert rec["model"]["sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()


def test_export_refuses_to_overwrite_and_needs_an_onnx_name(exported, tmp_path):
    _, weights, onnx = exported
    r = runner.invoke(app, ["export", "onnx", "--model", str(weights), "--out", str(onnx)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = runner.invoke(app, ["export", "onnx", "--model", str(weights), "--out",
                            str(tmp_path / "m.bin")])
    assert r.exit_code == 2 and "must end in .onnx" in r.output


def test_a_foreign_onnx_file_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="not a facesr ONNX export"):
        OnnxRunner(path)
