"""facesr kernels command (to be written)."""


def kernels() -> None:
    """Estimate one x4 blur kernel per source image with KernelGAN."""
    raise NotImplementedError
