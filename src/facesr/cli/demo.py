"""facesr demo command (to be written)."""


def demo() -> None:
    """Run the main job on a bundled input."""
    raise NotImplementedError
