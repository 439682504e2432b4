"""facesr pairs command (to be written)."""


def pairs() -> None:
    """Write LR/HR training pairs."""
    raise NotImplementedError
