"""facesr noise command (to be written)."""


def noise() -> None:
    """Collect zero-mean noise patches from smooth regions of source images."""
    raise NotImplementedError
