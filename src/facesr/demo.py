"""The bundled demo input: a public-domain portrait shipped inside scikit-image, degraded
surveillance-style in code (no download, no data files of our own), and the side-by-side
panel that ``facesr demo`` writes (input LR, bicubic x4, facesr x4, clean reference)."""

from __future__ import annotations

import importlib.resources

import numpy as np
import torch
from torch import Tensor

from facesr.degrade.degradation import DegradeConfig, Pools, degrade, sample_degradation
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool
from facesr.io import read_image

# NASA portrait of astronaut Eileen Collins (public domain), scikit-image's `astronaut`
FACE_BOX = (24, 128, 192, 192)  # top, left, height, width of the face in the 512x512 image

# a soft, slightly anisotropic camera blur, sensor noise and strong JPEG, as in CCTV stills
DEMO_KERNEL = gaussian_kernel(25, 2.2, 1.6, 0.5)
DEMO_DEGRADATION = DegradeConfig(noise="gaussian", noise_sigma=6.0, jpeg_prob=1.0,
                                 jpeg_quality=(35, 35))


def demo_face() -> Tensor:
    """The clean 192x192 face crop (3, 192, 192) in [0, 1].

    Raises:
        FileNotFoundError: scikit-image (which carries the picture) is not installed.
    """
    try:
        path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    except ModuleNotFoundError:
        raise FileNotFoundError("the demo picture ships with scikit-image: "
                                "pip install scikit-image") from None
    img = read_image(str(path))
    t, left, h, w = FACE_BOX
    return img[:, t:t + h, left:left + w].contiguous()


def demo_lr(seed: int = 0) -> tuple[Tensor, Tensor, dict]:
    """(clean HR face, its surveillance-style LR 48x48, the degradation record)."""
    hr = demo_face()
    pools = Pools(KernelPool(DEMO_KERNEL[None], [{"source": "demo kernel"}]))
    rng = np.random.default_rng(seed)
    params = sample_degradation(rng, pools, DEMO_DEGRADATION, (hr.shape[-2] // 4,
                                                                hr.shape[-1] // 4))
    return hr, degrade(hr, params), params.record


def side_by_side(columns: list[tuple[str, Tensor]], height: int = 192) -> np.ndarray:
    """Label and place images next to each other (each resized to ``height`` by nearest).

    Returns: float RGB HWC array in [0, 1].
    """
    import cv2

    tiles = []
    for label, img in columns:
        arr = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        w = round(arr.shape[1] * height / arr.shape[0])
        arr = cv2.resize(arr, (w, height), interpolation=cv2.INTER_NEAREST)
        bar = np.ones((22, w, 3), np.float32)
        (text_w, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        font = min(0.45, 0.45 * (w - 8) / max(text_w, 1))  # shrink long labels to fit
        cv2.putText(bar, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.concatenate([bar, arr], axis=0))
        tiles.append(np.ones((height + 22, 4, 3), np.float32))
    return np.concatenate(tiles[:-1], axis=1)


def bicubic_up(lr: Tensor, scale: int = 4) -> Tensor:
    """The classical baseline: bicubic x``scale``. Shape: (3, h, w) -> (3, h*s, w*s)."""
    out = torch.nn.functional.interpolate(lr[None], scale_factor=scale, mode="bicubic",
                                          align_corners=False)
    return out[0].clamp(0, 1)
