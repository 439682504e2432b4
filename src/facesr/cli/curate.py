"""facesr curate command (to be written)."""


def curate() -> None:
    """Keep sharp, clean, colour target faces."""
    raise NotImplementedError
