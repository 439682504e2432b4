"""ONNX export of an x4 network and an onnxruntime runner for it.

Export needs ``onnx`` and ``onnxscript`` (PyTorch's ``torch.export``-based exporter); running
needs ``onnxruntime`` only. The exported graph has one input ``lr`` (N, 3, H, W) and one output
``sr`` (N, 3, 4H, 4W), float32, with N, H and W dynamic, and carries facesr metadata
(``facesr.format``, the source model's name, SHA-256 and architecture).

>>> default_threads() >= 1
True
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

ONNX_FORMAT = "facesr.onnx"
ONNX_VERSION = "1"
OPSET = 18
INSTALL_RUN = "pip install onnxruntime==1.32.0"
INSTALL_EXPORT = "pip install onnx==1.23.2 onnxscript==0.7.2"


def default_threads() -> int:
    """CPU cores this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def export_onnx(model: nn.Module, *, metadata: dict[str, str] | None = None,
                opset: int = OPSET) -> bytes:
    """Export an x4 network (on the CPU, float32) to ONNX with dynamic batch, height and width.

    Args:
        model: the network; it is put in eval mode.
        metadata: extra string key/values stored in the model (e.g. the source's SHA-256).
        opset: ONNX opset version.

    Returns:
        The serialised ONNX model (write it with :func:`facesr.io.atomic_write_bytes`).

    Raises:
        ImportError: onnx / onnxscript are not installed.
    """
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError(f"ONNX export needs onnx and onnxscript: {INSTALL_EXPORT} ({e})"
                          ) from None
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("export a float32 model on the CPU (zoo.load(name, device='cpu'))")
    model.eval()
    sample = torch.rand(1, getattr(model, "in_ch", 3), 32, 32)
    dims = {0: torch.export.Dim("batch", min=1, max=1024),
            2: torch.export.Dim("height", min=2, max=16384),
            3: torch.export.Dim("width", min=2, max=16384)}
    arg = next(iter(_forward_args(model)))
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" notes are irrelevant here
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (sample,), dynamo=True, input_names=["lr"],
                                        output_names=["sr"], dynamic_shapes={arg: dims},
                                        opset_version=opset, verbose=False, optimize=True)
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    meta = {"facesr.format": ONNX_FORMAT, "facesr.version": ONNX_VERSION, "facesr.scale": "4",
            **(metadata or {})}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return proto.SerializeToString()


def _forward_args(model: nn.Module) -> list[str]:
    return [p for p in inspect.signature(model.forward).parameters if p != "self"]


def session_options(threads: int | None = None):
    """onnxruntime options for CPU inference: all graph optimisations, sequential execution,
    ``threads`` intra-op threads (default :func:`default_threads`), one inter-op thread, and
    threads that sleep rather than spin between ops.

    Measured with a 6-block RRDBNet: ``ORT_ENABLE_ALL`` (NCHWc conv layout) is 1.8x faster
    than ``ORT_ENABLE_EXTENDED``; without spinning, 2 threads on 2 cores shared with another
    job ran 1.5x faster (1 thread: no change).
    """
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only
    return so


class OnnxRunner:
    """An onnxruntime session used as a runner: (1, 3, h, w) tensor -> (1, 3, 4h, 4w) tensor.

    Args:
        model: path of an ``.onnx`` file or its bytes (as :func:`export_onnx` returns).
        device: ``cpu``, or ``cuda`` (needs the onnxruntime-gpu build).
        threads: intra-op threads on the CPU (default: all cores this process may use).

    Raises:
        ImportError: onnxruntime is not installed.
        ValueError: ``device`` is not available in this onnxruntime build, or the file is not
            a facesr ONNX export.
    """

    def __init__(self, model: str | os.PathLike | bytes, *, device: str = "cpu",
                 threads: int | None = None) -> None:
        ort = _ort()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError("onnxruntime here has no CUDA support: pip install "
                                 "onnxruntime-gpu, or use --backend torch")
            providers.insert(0, "CUDAExecutionProvider")
        elif device != "cpu":
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, session_options(threads),
                                                providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            name = "model bytes" if isinstance(model, bytes) else str(model)
            raise ValueError(f"{name}: onnxruntime cannot load it ({str(e).splitlines()[0]})"
                             ) from None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("facesr.format") != ONNX_FORMAT:
            raise ValueError(f"{'model bytes' if isinstance(model, bytes) else model}: not a "
                             "facesr ONNX export (make one with `facesr export onnx`)")
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: Tensor) -> Tensor:
        y = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(y)


def load_onnx(path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None):
    """An :class:`OnnxRunner` for a file from ``facesr export onnx`` and its ModelInfo.

    The info's name, architecture and source come from the file's metadata; ``sha256`` is the
    ONNX file's own, and ``source`` names the weights it was exported from.
    """
    from facesr.io import sha256_file
    from facesr.models.zoo import ModelInfo

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: ONNX file not found")
    runner = OnnxRunner(p, device=device, threads=threads)
    meta = runner.metadata
    arch = json.loads(meta.get("facesr.arch", "{}"))
    digest = sha256_file(p)
    source = (f"exported from {meta.get('facesr.model_name', '?')} "
              f"(sha256 {meta.get('facesr.model_sha256', '?')})")
    info = ModelInfo(p.name, meta.get("facesr.architecture", "?"), arch, {str(p): digest},
                     digest, source)
    return runner, info


def export_metadata(info) -> dict[str, str]:
    """Metadata for :func:`export_onnx` from a :class:`facesr.models.zoo.ModelInfo`."""
    return {"facesr.model_name": info.name, "facesr.model_sha256": info.sha256,
            "facesr.architecture": info.architecture, "facesr.arch": json.dumps(info.arch)}


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"the onnx backend needs onnxruntime: {INSTALL_RUN} ({e})") from None
    return onnxruntime
