"""Benchmarks: methods (classical resampling, x4 models) scored on synthetic or real faces.

The pieces ``facesr evaluate`` is made of, none of which writes files but the last:

- :mod:`facesr.eval.methods`: ``bicubic``, ``lanczos``, model names and weight files as one
  ``Method`` (``run(lr) -> sr``);
- :mod:`facesr.eval.inputs`: the seeded synthetic degradation of a clean face, and shrinking
  of real faces;
- :mod:`facesr.eval.scoring`: registered metrics checked and loaded up front, per-image scores
  with empty cells (and notes) where a metric cannot be computed;
- :mod:`facesr.eval.stats`, :mod:`facesr.eval.tables`: mean and t-interval per method, as
  Markdown and CSV;
- :mod:`facesr.eval.report`: the side-by-side HTML page;
- :mod:`facesr.eval.records`: resume bookkeeping;
- :mod:`facesr.eval.folder`: the output folder: which earlier results are reusable, and one
  image's work (inputs and outputs written, results recorded).
"""

from facesr.eval.methods import CLASSICAL, Method, method_name, resolve_methods
from facesr.eval.stats import MeanCI, mean_ci
from facesr.eval.tables import Row, per_image_csv, summarize, to_csv, to_markdown

__all__ = ["CLASSICAL", "MeanCI", "Method", "Row", "mean_ci", "method_name", "per_image_csv",
           "resolve_methods", "summarize", "to_csv", "to_markdown"]
