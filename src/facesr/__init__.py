"""facesr: x4 super-resolution of real low-quality faces from surveillance cameras.

The two calls most users need (``import facesr`` itself stays cheap: PyTorch, OpenCV and the
models load on first use)::

    import facesr
    from facesr.io import read_image, write_image

    sr = facesr.upscale_face(read_image("face.png"))         # (3, 4H, 4W)
    result = facesr.upscale_frame(read_image("frame.png"))   # faces found and enhanced
    for f in result.faces:
        print(f.face.box, f.face.score, f.image.shape)
    write_image("frame_x4.png", result.frame)

Images are float32 RGB tensors (3, H, W) or (N, 3, H, W) in [0, 1]; uint8 tensors, numpy
arrays (H, W, 3) and PIL images are accepted too (see :mod:`facesr.infer.images`). Details in
super-resolved images are synthesised by a generative model; they are not evidence and must not
be used to identify anyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facesr.infer.burst import BurstResult
    from facesr.infer.pipeline import FrameSR

__all__ = ["upscale_burst", "upscale_face", "upscale_frame"]
__version__ = "0.1.0"

# sigma (input px) of the low-frequency colour lock applied to every model output, chosen on
# the validation faces of both protocols with facesr-default v3: PSNR-Y gain over bicubic
# (sharp / UTKFace) raw +1.07 / +1.44, sigma 1 +1.14 / +1.24, 2 +1.12 / +1.42, 4 +1.09 / +1.44:
# below 2 the input's noise leaks into the low frequencies of wide-blur (footage) faces
# (here, not in facesr.infer.pipeline, so that `import facesr` stays cheap)
COLOR_LOCK = 2.0


def _model(model: Any, device: Any, dtype: Any) -> tuple[Any, Any]:
    """(network or runner, dtype for the pipeline). Names and paths go through the model zoo;
    with ``dtype`` None, networks get :func:`facesr.infer.pipeline.auto_runner` (on the CPU:
    fused oneDNN convs, bf16 where the CPU has AMX-BF16)."""
    import os

    import torch

    if model is None or isinstance(model, str | os.PathLike):
        from facesr.models import zoo

        model = zoo.load(model or zoo.default_model_name(), device=device)[0]
    if dtype is None and isinstance(model, torch.nn.Module):
        from facesr.infer.pipeline import auto_runner

        return auto_runner(model, device=device)[0], torch.float32
    return model, dtype or torch.float32


def upscale_face(image: Any, model: Any = None, *, tile: int = 256, overlap: int = 16,
                 device: Any = "cpu", dtype: Any = None,
                 lock_colors: float | None = COLOR_LOCK) -> Any:
    """Super-resolve a face crop (or a batch of them) x4.

    Args:
        image: a torch tensor (3, H, W) or (N, 3, H, W), float in [0, 1] or uint8 (0-255)
            (``facesr.io.read_image`` gives a float one); a numpy array (H, W, 3), RGB, float
            in [0, 1] or uint8; or a PIL image (converted to RGB).
        model: a model name (``"realesrgan-x4plus"``, ``"facesr-default"``), a weights
            file, a loaded network (``facesr.models.load(...)[0]``: load once for many
            images) or a runner such as ``facesr.infer.onnx_backend.OnnxRunner``; None picks
            ``facesr-default`` when shipped, else ``realesrgan-x4plus``.
        tile, overlap: tile side and context in input pixels (memory bound; 0 = no tiling).
        device: where the network runs (``"cpu"``, ``"cuda"``).
        dtype: None (default) picks the fastest faithful path, as ``facesr upscale
            --precision auto``: on the CPU fused oneDNN convs, in bf16 where the CPU has
            AMX-BF16 (52 dB from float32), else float32; on CUDA fp16 autocast.
            ``torch.float32`` runs plain float32; ``torch.float16`` / ``torch.bfloat16``
            run under autocast.
        lock_colors: the output keeps the input's low frequencies (Gaussian sigma in input
            px, ``facesr.infer.pipeline.color_lock``): no tint or brightness drift, whatever
            the model; None or 0 returns the network's output as it is.

    Returns:
        The same kind as ``image``, x4: a float32 tensor (3, 4H, 4W) or (N, 3, 4H, 4W) in
        [0, 1] on ``image``'s device (a uint8 tensor for uint8 input); a numpy array
        (4H, 4W, 3), float32 in [0, 1] or uint8 as given; an RGB PIL image.

    Raises:
        ValueError: another type, dtype, shape or channel count; NaN or infinite values;
            floats outside [0, 1] (e.g. 0-255: divide by 255); an x4 output over 140 MP
            (``facesr.infer.pipeline.MAX_OUTPUT_PIXELS``), refused before it runs; a model
            output that is not finite.

    Shape: (3, H, W) -> (3, 4H, 4W); (N, 3, H, W) -> (N, 3, 4H, 4W).
    """
    import torch

    from facesr.infer.images import from_batch, to_batch
    from facesr.infer.pipeline import upscale_face as _upscale_face

    batch, kind = to_batch(image)
    net, dtype = _model(model, device, dtype)
    out = torch.stack([_upscale_face(x, net, tile=tile, overlap=overlap, device=device,
                                     dtype=dtype, lock_colors=lock_colors) for x in batch])
    return from_batch(out, kind)


def upscale_burst(crops: Any, *, reference: int = 0, model: Any = None,
                  **kwargs: Any) -> BurstResult:
    """Super-resolve ``crops[reference]`` x4 using crops of the same face from neighbouring
    frames: sub-pixel registration (ECC), rejection of frames that do not register, robust
    averaging, then the model. Float (3, H, W) tensors in [0, 1], all the same size; returns
    a ``BurstResult`` (``.image`` (3, 4H, 4W), ``.used``, ``.rejected``, ``.scores``). Other
    keywords (``min_score``, ``lock_colors``, ``device``, ...): see
    :func:`facesr.infer.burst.upscale_burst`."""
    from facesr.infer.burst import upscale_burst as _upscale_burst

    return _upscale_burst(crops, reference=reference, model=model, **kwargs)


def upscale_frame(image: Any, model: Any = None, *, detector: Any = None,
                  margin: float = 0.5, whole_frame: bool = True, background: str = "bicubic",
                  tile: int = 256, overlap: int = 16, device: Any = "cpu",
                  dtype: Any = None, lock_colors: float | None = COLOR_LOCK
                  ) -> FrameSR | list[FrameSR]:
    """Find the faces in a frame, super-resolve each, and paste them into the x4 frame.

    Args:
        image: any image :func:`upscale_face` takes; a (N, 3, H, W) tensor is N frames.
        model: as in :func:`upscale_face`.
        detector: a detector name (see ``facesr.infer.faces.DETECTORS``; default ``mtcnn``)
            or a ``FaceDetector`` object.
        margin: fraction of the (square) face box added on every side of each crop.
        whole_frame: also return the x4 frame: the input resampled (``background``:
            ``bicubic`` or ``lanczos``) with the enhanced faces blended in.
        tile, overlap, device, dtype, lock_colors: as in :func:`upscale_face`.

    Returns:
        ``FrameSR`` (a list of them for a (N, 3, H, W) batch), whatever the input kind, of
        float32 tensors in [0, 1]: ``.faces``, one ``FaceSR`` per face (``.face``: detector
        box, score and landmarks in input pixels; ``.box``: the enhanced region; ``.image``:
        (3, 4h, 4w)), and ``.frame`` (3, 4H, 4W) or None.

    Raises:
        ValueError: as :func:`upscale_face`.
    """
    from facesr.infer.faces import DEFAULT_DETECTOR, make_detector
    from facesr.infer.images import to_batch
    from facesr.infer.pipeline import upscale_frame as _upscale_frame

    batch, kind = to_batch(image)
    if detector is None or isinstance(detector, str):
        detector = make_detector(detector or DEFAULT_DETECTOR)
    net, dtype = _model(model, device, dtype)
    results = [_upscale_frame(x, net, detector, margin=margin, whole_frame=whole_frame,
                              background=background, tile=tile, overlap=overlap,
                              device=device, dtype=dtype, lock_colors=lock_colors)
               for x in batch]
    return results if kind.batched else results[0]
