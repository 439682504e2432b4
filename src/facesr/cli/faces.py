"""facesr faces command (to be written)."""


def extract() -> None:
    """Detect faces in images, folders and videos and save crops with a JSONL manifest."""
    raise NotImplementedError
