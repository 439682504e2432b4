"""Networks: the RRDBNet generator, the PatchGAN discriminator, and weight import.

``facesr.models.ncnn`` (Real-ESRGAN ncnn import) is not imported here; import it directly.
"""

from facesr.models.patchgan import PatchDiscriminator, patch_map_size
from facesr.models.rrdb import (
    ESRGAN_KEY_MAP,
    RRDBNet,
    arch_from_state_dict,
    convert_state_dict,
    load_rrdb,
    save_rrdb,
)

__all__ = [
    "ESRGAN_KEY_MAP",
    "PatchDiscriminator",
    "RRDBNet",
    "arch_from_state_dict",
    "convert_state_dict",
    "load_rrdb",
    "patch_map_size",
    "save_rrdb",
]
