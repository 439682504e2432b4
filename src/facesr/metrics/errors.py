"""The one error type of the metrics package (its own module so every metric can raise it)."""

from __future__ import annotations


class WeightsUnavailableError(FileNotFoundError):
    """A metric's weight file is not available (nothing is ever downloaded)."""
