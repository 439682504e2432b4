"""Super-resolve a face crop, or the faces of a whole frame pasted into its resampled background.

Images are float32 RGB (3, H, W) tensors in [0, 1]. ``model`` is an x4 network: an
``nn.Module`` (run with :func:`torch_runner`) or any runner callable (1, 3, h, w) ->
(1, 3, 4h, 4w), e.g. :class:`facesr.infer.onnx_backend.OnnxRunner`.

Frame mode: faces are detected on the input frame, each face box is grown by ``margin`` and
super-resolved on its own; the x4 frame is the input resampled (bicubic or Lanczos) with every
enhanced crop blended in through a feathered mask. The mask is 0 on the crop's outer
``2 * scale`` px (where the network and the resampler both see the crop border), rises with a
raised cosine over ``feather`` of the crop side, and stays 1 up to sides that touch the frame
edge, so no seam shows and unchanged crops leave the frame unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facesr import COLOR_LOCK
from facesr.infer.detectors import Face
from facesr.infer.faces import FaceDetector, expand_box
from facesr.infer.tiling import Runner, upscale_tiled
from facesr.models.rrdb import RRDBNet

SCALE = 4
NOTICE = ("Details in this image are synthesised by a generative model; they are not evidence "
          "and must not be used to identify anyone.")
Box = tuple[int, int, int, int]  # x, y, w, h in input pixels

SMALL = 160  # auto: both sides at most this -> the input is a face crop
FACE_SHARE = 0.25  # auto: a face box covering this share of the image -> face crop
MAX_FACE_SIDE = 512  # auto: no face found and no side above this -> upscale it as a face
# the largest whole x4 output made (face mode's image, frame mode's whole frame): a float32
# (3, 4H, 4W) tensor of 140 MP is 1.7 GB, and the background, the pasted copy and the 8-bit
# image for the file come on top; 140 MP admits a 4K video frame (3840 x 2160 -> 133 MP)
MAX_OUTPUT_PIXELS = 140_000_000


def check_output_size(size: tuple[int, int], *, scale: int = SCALE,
                      hint: str = "downscale it, or upscale crops of it") -> None:
    """Refuse, before any work, an input of ``(width, height)`` whose x``scale`` output would be
    over :data:`MAX_OUTPUT_PIXELS`.

    Raises:
        ValueError: one line with the output size, the limit and ``hint`` (what to do).
    """
    w, h = size
    if scale * w * scale * h > MAX_OUTPUT_PIXELS:
        raise ValueError(f"the x{scale} output of this {w}x{h} px input would be "
                         f"{scale * w}x{scale * h} px ({scale * w * scale * h / 1e6:.0f} MP), "
                         f"over the {MAX_OUTPUT_PIXELS / 1e6:g} MP limit; {hint}")


def choose_mode(size: tuple[int, int], faces: list[Face]) -> tuple[str, str]:
    """Pick face or frame mode for an image of ``(width, height)`` and its detected faces.

    Face mode (the image is one face crop) when both sides are at most :data:`SMALL` px, when
    the largest face covers at least :data:`FACE_SHARE` of the image, or when no face is found
    in an image no larger than :data:`MAX_FACE_SIDE` (detectors miss many low-quality faces);
    frame mode otherwise.

    Returns:
        ``(mode, reason)``, the reason in words for records.
    """
    w, h = size
    if w <= SMALL and h <= SMALL:
        return "face", f"both sides <= {SMALL} px"
    if not faces:
        if max(w, h) <= MAX_FACE_SIDE:
            return "face", "no face detected; the whole image is upscaled as one face"
        return "frame", f"no face detected and a side > {MAX_FACE_SIDE} px: background only"
    share = max(f.w * f.h for f in faces) / (w * h)
    if share >= FACE_SHARE:
        return "face", f"a face covers {share:.0%} of the image"
    return "frame", f"{len(faces)} face(s) detected"


@dataclass(frozen=True)
class FaceSR:
    """One enhanced face of a frame."""

    face: Face  # the detector's box, score and landmarks, in input pixels
    box: Box  # the super-resolved region (face box + margin, clipped), in input pixels
    image: Tensor  # (3, 4h, 4w) in [0, 1]
    # with neighbours (burst fusion): facesr.infer.burst.BurstResult of the crops [this
    # frame's, then each neighbour's]; None: single-frame
    burst: object | None = None


@dataclass(frozen=True)
class FrameSR:
    """The result of :func:`upscale_frame`."""

    faces: list[FaceSR]
    frame: Tensor | None  # (3, 4H, 4W) in [0, 1], or None when not asked for
    scale: int = SCALE


def torch_runner(model: nn.Module, *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False) -> Runner:
    """Wrap a network as a runner: no autograd, autocast when ``dtype`` is not float32.

    Args:
        model: an x4 network already on ``device`` (e.g. ``zoo.load(name, device)``).
        device: where each input is moved before the forward pass.
        dtype: float32, or float16 / bfloat16 to run under ``torch.autocast`` (CUDA: fp16 or
            bf16; CPU: bf16).
        channels_last: feed NHWC memory layout (faster oneDNN/cuDNN kernels on some machines;
            the model is converted in place).

    Returns:
        A callable (1, 3, h, w) -> float32 (1, 3, 4h, 4w) on ``device``.
    """
    device = torch.device(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(x: Tensor) -> Tensor:
        x = x.to(device, torch.float32).contiguous(memory_format=fmt)
        amp = (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32
               else contextlib.nullcontext())
        with torch.no_grad(), amp:  # not inference_mode: callers may edit outputs in place
            return model(x).float()

    return run


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def auto_runner(model: nn.Module, *, device: torch.device | str = "cpu",
                precision: str = "auto") -> tuple[Runner, str]:
    """The fastest faithful way to run ``model`` here, and a label saying what it is.

    ``precision="auto"``: CUDA runs fp16 autocast; the CPU runs :func:`fused_cpu_runner` for
    x4 RRDBNets, in bf16 on CPUs with AMX-BF16 (measured 5-6x faster than eager fp32, 52 dB
    from it) and fp32 elsewhere; other networks run :func:`torch_runner` in fp32.
    ``"fp32"``, ``"bf16"``, ``"fp16"`` force a precision (fused on the CPU where possible).

    Returns:
        ``(runner, label)``, label e.g. ``"bf16 fused"``, ``"fp16 autocast"``, ``"fp32"``.
    """
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    dev = torch.device(device)
    fused = (dev.type == "cpu" and fused_cpu_available() and isinstance(model, RRDBNet)
             and model.scale == 4)
    if precision == "auto":
        precision = ("fp16" if dev.type == "cuda" else
                     "bf16" if fused and cpu_has_amx_bf16() else "fp32")
    if fused and precision in ("fp32", "bf16"):
        return fused_cpu_runner(model, dtype=PRECISIONS[precision]), precision + " fused"
    runner = torch_runner(model, device=dev, dtype=PRECISIONS[precision])
    return runner, precision + (" autocast" if precision != "fp32" else "")


def fused_cpu_available() -> bool:
    """True where :func:`fused_cpu_runner` runs: an x86-64 CPU and a PyTorch with oneDNN."""
    return (torch.backends.mkldnn.is_available()
            and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def cpu_has_amx_bf16() -> bool:
    """True where the CPU has AMX-BF16 tiles (Intel Sapphire Rapids and later), on which
    :func:`fused_cpu_runner` in bfloat16 was measured 5-6x faster than eager float32."""
    return bool(torch.cpu.get_capabilities().get("amx_bf16", False))


def cpu_has_bf16_units() -> bool:
    """True where the CPU computes bfloat16 natively: AMX-BF16 or AVX512-BF16 (Cooper Lake,
    Sapphire Rapids, Zen 4 and later). bf16 autocast *training* was measured about 2x faster
    than float32 on an AVX512-BF16 CPU without AMX (``facesr adapt --precision``); without
    either there is no native bf16 arithmetic to gain from."""
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("amx_bf16", False) or caps.get("avx512_bf16", False))


def fused_cpu_runner(model: RRDBNet, *, dtype: torch.dtype = torch.bfloat16) -> Runner:
    """Run an x4 RRDBNet on the CPU as one oneDNN call per conv, leaky ReLU fused in.

    The network is rebuilt from ``model``'s weights (the module is left unchanged): weights
    reordered once to oneDNN's blocked layout, activations channels_last, the dense blocks'
    0.2 residual scale folded into ``conv5``. In bfloat16 every conv but ``conv_first`` runs
    in bf16 (AMX / AVX512-BF16), while ``conv_first`` and the residual sums stay float32: with
    Real-ESRGAN x4plus on 35 real 92 px faces, 8-bit outputs are 52.2 dB PSNR from eager
    float32 on average, 47.7 dB at worst, at most 18/255 apart (plain bf16 autocast: 45.0 and
    36.5 dB, 74/255). In float32 it equals eager up to float rounding (1.3x faster).

    Args:
        model: an x4 :class:`facesr.models.RRDBNet` on the CPU.
        dtype: ``torch.bfloat16`` or ``torch.float32``.

    Returns:
        A callable (N, 3, h, w) -> float32 (N, 3, 4h, 4w) on the CPU.
    """
    if not isinstance(model, RRDBNet) or model.scale != 4:
        raise ValueError("fused_cpu_runner runs x4 RRDBNets; use torch_runner for other models")
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    if not fused_cpu_available():
        raise ValueError("the fused CPU path needs an x86-64 CPU and PyTorch with oneDNN; "
                         "use torch_runner")
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise ValueError("oneDNN has no bf16 kernels for this CPU; use float32")
    conv = torch.ops.mkldnn._convolution_pointwise
    weights = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k = 0.2 if name.endswith(".conv5") else 1.0
            dt = torch.float32 if name == "conv_first" else dtype
            w = (m.weight.detach().cpu().float() * k).to(dt)
            w = w.contiguous(memory_format=torch.channels_last)
            w = torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), [1, 1], [1, 1],
                                                          [1, 1], 1, None)
            weights[name] = (w, (m.bias.detach().cpu().float() * k).to(dt))

    def c(name: str, x: Tensor, act: bool = True) -> Tensor:
        w, b = weights[name]
        return conv(x, w, b, [1, 1], [1, 1], [1, 1], 1, "leaky_relu" if act else "none",
                    [0.2] if act else [], "")

    def run(x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != model.in_ch:
            raise ValueError(f"expected (N, {model.in_ch}, H, W) input, got {tuple(x.shape)}")
        with torch.no_grad():
            feat = c("conv_first", x.cpu().float().contiguous(memory_format=torch.channels_last),
                     act=False)
            trunk = feat
            for i in range(model.num_block):
                r = trunk
                for j in (1, 2, 3):
                    p = f"body.{i}.rdb{j}."
                    xs = [r.to(dtype)]
                    for n in (1, 2, 3, 4):
                        xs.append(c(f"{p}conv{n}", torch.cat(xs, 1) if n > 1 else xs[0]))
                    r = r + c(p + "conv5", torch.cat(xs, 1), act=False)
                trunk = torch.add(trunk, r, alpha=0.2)
            feat = (feat + c("conv_body", trunk.to(dtype), act=False)).to(dtype)
            feat = c("conv_up1", F.interpolate(feat, scale_factor=2, mode="nearest"))
            feat = c("conv_up2", F.interpolate(feat, scale_factor=2, mode="nearest"))
            return c("conv_last", c("conv_hr", feat), act=False).float()

    return run


def as_runner(model: nn.Module | Runner, **kwargs) -> Runner:
    """A runner for an ``nn.Module`` (see :func:`torch_runner`) or a runner unchanged."""
    return torch_runner(model, **kwargs) if isinstance(model, nn.Module) else model




def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with replicated borders.

    Shape: (N, C, H, W) -> same.
    """
    r = max(1, int(3 * sigma + 0.5))
    ax = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (ax / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def color_lock(sr: Tensor, lr: Tensor, sigma: float = COLOR_LOCK, scale: int = SCALE) -> Tensor:
    """Give ``sr`` the low frequencies of its input: add the difference between the input and
    the output's area-downscale, both Gaussian-blurred by ``sigma`` input px, upsampled.

    The degradation keeps the mean colour (tests/degrade/test_color_bias.py), so the input's
    low frequencies are the face's; a network's are not always (an L1-trained one learns the
    conditional median: facesr-default v2 drifted faces by +1.9/+1.6/+3.1 levels R/G/B). Detail
    finer than ``sigma`` is the model's own. On the validation faces it takes that drift to
    bicubic's (0.2-0.5 level, what noise and JPEG leave in the input itself).

    Shape: sr (3, sH, sW), lr (3, H, W) -> (3, sH, sW), clamped to [0, 1].
    """
    lo = gaussian_blur(lr[None].float(), sigma) - gaussian_blur(
        F.avg_pool2d(sr[None].float(), scale), sigma)
    up = F.interpolate(lo, scale_factor=scale, mode="bilinear", align_corners=False)
    return (sr + up[0].to(sr)).clamp(0, 1)


def upscale_face(image: Tensor, model: nn.Module | Runner, *, tile: int = 256,
                 overlap: int = 16, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32,
                 lock_colors: float | None = COLOR_LOCK) -> Tensor:
    """Super-resolve a face crop (or any image) x4.

    Args:
        image: float32 RGB (3, H, W) in [0, 1].
        model: x4 network or runner.
        tile, overlap: see :func:`facesr.infer.tiling.upscale_tiled`.
        device, dtype: where and in which precision an ``nn.Module`` runs.
        lock_colors: sigma in input px of :func:`color_lock` (the output keeps the input's
            low frequencies, so no tint); None or 0: the network's output as it is.

    Returns:
        float32 (3, 4H, 4W) in [0, 1] on ``image``'s device.

    Raises:
        ValueError: a bad image shape, an output over :data:`MAX_OUTPUT_PIXELS` (refused
            before any work), or a model output with NaN or infinite values (broken weights,
            or an overflow in reduced precision), which clamping would hide.

    Shape: (3, H, W) -> (3, 4H, 4W).
    """
    _check(image)
    check_output_size((image.shape[-1], image.shape[-2]))
    run = as_runner(model, device=device, dtype=dtype)
    sr = upscale_tiled(image, run, scale=SCALE, tile=tile, overlap=overlap)
    if not bool(torch.isfinite(sr).all()):
        raise ValueError("the model's output holds NaN or infinite values (broken weights, or "
                         "an overflow in reduced precision: try float32 / --precision fp32)")
    if lock_colors:
        return color_lock(sr, image.to(sr), lock_colors)
    return sr.clamp(0, 1)


def resample(image: Tensor, scale: int = SCALE, method: str = "bicubic") -> Tensor:
    """Classical x``scale`` resampling: ``bicubic`` (PyTorch, a=-0.75) or ``lanczos`` (OpenCV).

    Shape: (3, H, W) -> (3, scale*H, scale*W), clamped to [0, 1].
    """
    _check(image)
    if method == "bicubic" and image.device.type != "cpu":
        out = F.interpolate(image[None].float(), scale_factor=scale, mode="bicubic",
                            align_corners=False)[0]
    elif method == "bicubic":  # OpenCV's is the same kernel (a=-0.75, equal to 1e-6), 2x faster
        arr = np.ascontiguousarray(image.detach().float().permute(1, 2, 0).numpy())
        up = cv2.resize(arr, (arr.shape[1] * scale, arr.shape[0] * scale),
                        interpolation=cv2.INTER_CUBIC)
        out = torch.from_numpy(up).permute(2, 0, 1)
    elif method == "lanczos":
        arr = image.detach().float().cpu().permute(1, 2, 0).numpy()
        up = cv2.resize(arr, (arr.shape[1] * scale, arr.shape[0] * scale),
                        interpolation=cv2.INTER_LANCZOS4)
        out = torch.from_numpy(up).permute(2, 0, 1).to(image.device)
    else:
        raise ValueError(f"background must be 'bicubic' or 'lanczos', got {method!r}")
    return out.clamp(0, 1)


def feather_mask(box: Box, image_size: tuple[int, int], *, scale: int = SCALE,
                 feather: float = 0.15, inset: int | None = None) -> Tensor:
    """Blending weights for a crop pasted back at ``scale``x (see the module docstring).

    Args:
        box: the crop's ``(x, y, w, h)`` in input pixels.
        image_size: ``(width, height)`` of the input frame.
        feather: ramp length as a fraction of the crop's shorter side.
        inset: output pixels kept at 0 along sides inside the frame (default ``2 * scale``).

    Returns:
        float32 (scale*h, scale*w) in [0, 1].
    """
    x, y, w, h = box
    width, height = image_size
    inset = 2 * scale if inset is None else inset
    ramp = max(1, round(feather * scale * min(w, h)))

    def axis(n: int, at_start: bool, at_end: bool) -> Tensor:
        d = torch.arange(n, dtype=torch.float32)
        d_start = torch.full_like(d, math.inf) if at_start else d - inset + 0.5
        d_end = torch.full_like(d, math.inf) if at_end else (n - 1 - d) - inset + 0.5
        t = (torch.minimum(d_start, d_end) / ramp).clamp(0, 1)
        return 0.5 - 0.5 * torch.cos(math.pi * t)

    wy = axis(scale * h, y == 0, y + h == height)
    wx = axis(scale * w, x == 0, x + w == width)
    return wy[:, None] * wx[None, :]


def paste_faces(background: Tensor, crops: list[tuple[Box, Tensor]], *, scale: int = SCALE,
                feather: float = 0.15, inplace: bool = False) -> Tensor:
    """Blend x``scale`` crops into an x``scale`` frame through :func:`feather_mask`.

    Args:
        background: (3, scale*H, scale*W), e.g. :func:`resample` of the frame.
        crops: ``(box in input pixels, (3, scale*h, scale*w) image)`` pairs, pasted in order.
        inplace: paste into ``background`` itself (no copy of a large frame).

    Returns:
        A new (3, scale*H, scale*W) tensor (``background`` with ``inplace``).
    """
    out = background if inplace else background.clone()
    height, width = background.shape[-2] // scale, background.shape[-1] // scale
    for (x, y, w, h), img in crops:
        if tuple(img.shape[-2:]) != (scale * h, scale * w):
            raise ValueError(f"crop {tuple(img.shape)} does not match box {(x, y, w, h)} x{scale}")
        m = feather_mask((x, y, w, h), (width, height), scale=scale, feather=feather)
        m = m.to(out.device)
        region = out[:, scale * y:scale * (y + h), scale * x:scale * (x + w)]
        region.mul_(1 - m).add_(img.to(out.device, out.dtype) * m)
    return out


def upscale_frame(image: Tensor, model: nn.Module | Runner, detector: FaceDetector | None, *,
                  margin: float = 0.5, whole_frame: bool = True, background: str = "bicubic",
                  feather: float = 0.15, tile: int = 256, overlap: int = 16,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                  faces: list[Face] | None = None,
                  timer: Callable[[str], contextlib.AbstractContextManager] | None = None,
                  lock_colors: float | None = COLOR_LOCK,
                  neighbours: list[Tensor] | None = None) -> FrameSR:
    """Detect faces, super-resolve each with a margin, optionally paste them into the x4 frame.

    Args:
        image: float32 RGB (3, H, W) frame in [0, 1].
        model: x4 network or runner.
        detector: a :class:`facesr.infer.faces.FaceDetector` (ignored when ``faces`` is given).
        margin: fraction of the square face box added on every side of the crop.
        whole_frame: also build the x4 frame (resampled background + blended faces).
        background: ``bicubic`` or ``lanczos``.
        feather: blend ramp as a fraction of each crop's shorter side.
        tile, overlap, device, dtype: as in :func:`upscale_face`.
        faces: boxes found earlier on this image (skips detection).
        timer: optional ``timer(stage)`` context manager factory, called for ``detect``,
            ``sr`` and ``paste`` (the CLI uses it for timings).
        neighbours: other frames of the same video (each (3, H, W), same size): each face is
            then super-resolved from its crop box in this frame and in every neighbour
            (:func:`facesr.infer.burst.upscale_burst`: registration, rejection of crops that
            do not register, fusion), the result in ``FaceSR.burst``.

    Returns:
        :class:`FrameSR` with one :class:`FaceSR` per face, in detector order.

    Raises:
        ValueError: with ``whole_frame``, a frame whose x4 is over :data:`MAX_OUTPUT_PIXELS`
            (refused before detection); see also :func:`upscale_face`.

    Shape: (3, H, W) -> crops (3, 4h, 4w) and frame (3, 4H, 4W).
    """
    _check(image)
    time = timer or (lambda _stage: contextlib.nullcontext())
    size = (image.shape[-1], image.shape[-2])
    if whole_frame:
        check_output_size(size, hint="pass whole_frame=False for the face crops only, or "
                          "downscale it")
    if faces is None:
        if detector is None:
            raise ValueError("give a detector or the faces")
        with time("detect"):
            arr = np.ascontiguousarray(image.detach().float().cpu().permute(1, 2, 0).numpy())
            faces = detector.detect(arr)
    run = as_runner(model, device=device, dtype=dtype)
    results = []
    with time("sr"):
        for face in faces:
            x, y, w, h = expand_box(face, margin, size)
            if neighbours:
                from facesr.infer.burst import upscale_burst

                crops = [f[:, y:y + h, x:x + w] for f in (image, *neighbours)]
                burst = upscale_burst(crops, reference=0, model=run, tile=tile,
                                      overlap=overlap, lock_colors=lock_colors)
                results.append(FaceSR(face, (x, y, w, h), burst.image, burst))
                continue
            sr = upscale_face(image[:, y:y + h, x:x + w], run, tile=tile, overlap=overlap,
                              lock_colors=lock_colors)
            results.append(FaceSR(face, (x, y, w, h), sr))
    frame = None
    if whole_frame:
        with time("paste"):
            frame = paste_faces(resample(image, SCALE, background),
                                [(r.box, r.image) for r in results], feather=feather,
                                inplace=True)
    return FrameSR(results, frame)


def _check(image: Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB (3, H, W) image, got shape {tuple(image.shape)}")
