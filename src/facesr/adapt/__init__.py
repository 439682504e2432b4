"""``facesr adapt``: footage of one camera in, a camera profile (and its model) out.

One module per step; :mod:`facesr.adapt.camera` runs them in order and owns ``camera.json``:

- ``footage``: which stills of the footage are used, and which are skipped and why;
- ``profile``: the kernel pool (KernelGAN, resumable) and the noise pool (the method's
  thresholds, relaxed step by step when they find too few patches);
- ``finetune``: the fine-tuning run of the base model on clean faces degraded with the profile
  (a ``facesr train`` run in ``CAMERA_DIR/train``; a budget in minutes or iterations; resume);
- ``check``: the synthetic check on held-out faces and the side-by-side real faces;
- ``report``: ``report.json`` (every number, and the files they come from) and ``report.html``
  (drawn from ``report.json`` alone).

The camera folder (``--out``)::

    camera.json          inputs (paths, sizes, SHA-256), settings, seeds, versions, steps done
    kernels.safetensors  kernel pool (``facesr pool show`` reads it)
    noise.safetensors    noise pool (absent when no smooth patch was found at any threshold)
    model.safetensors    the adapted model (``facesr upscale --model CAMERA_DIR``)
    base.safetensors     the base model it started from (fp16), base.json its record
    faces.txt            the clean target faces trained on (and held out: train/heldout.txt)
    train/               the fine-tuning run (config.yaml, metrics.jsonl, checkpoints)
    report.json, report.html, report/   the report and its pictures
"""

from __future__ import annotations

CAMERA_FORMAT = "facesr.camera"
CAMERA_VERSION = 1


def is_camera_dir(path: object) -> bool:
    """True for a folder written by ``facesr adapt`` (holds camera.json)."""
    from pathlib import Path

    p = Path(str(path))
    return p.is_dir() and (p / "camera.json").is_file()
