"""``facesr upscale``: x4 super-resolution of face crops, frames and video with a record per still.

The command and its options are in ``command`` (with the layout of ``--out``); the rest, one
job per module:

- ``layout``: which folder under ``--out`` and which name each input gets, a still's base name,
  the output format (``--ext``) and final size (``--outscale``), the header check;
- ``model``: loading ``--model`` (torch or onnx) and its record;
- ``batch``: the loop over every still of every input, resume included;
- ``still``: one still: face or frame mode, outputs at ``--outscale``, ``--save-lr`` and
  ``--compare``, its images written all or nothing;
- ``upsampled``: the check for inputs stored larger than their true resolution;
- ``records``: a still's record (written last) and the rules for resuming from one;
- ``video``: ``--save-video``'s MP4 and its record;
- ``engine_ray``: ``--engine ray``, the batch in Ray actors (files and video ranges handed out,
  retried when a worker dies), with the local run's outputs and records.
"""

from __future__ import annotations

from facesr.cli.upscale.command import upscale

__all__ = ["upscale"]
