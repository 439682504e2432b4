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
    read_rrdb,
    save_rrdb,
)
from facesr.models.zoo import MODELS, ModelInfo, available, default_model_name, load

__all__ = [
    "ESRGAN_KEY_MAP",
    "MODELS",
    "ModelInfo",
    "PatchDiscriminator",
    "RRDBNet",
    "arch_from_state_dict",
    "available",
    "convert_state_dict",
    "default_model_name",
    "load",
    "load_rrdb",
    "patch_map_size",
    "read_rrdb",
    "save_rrdb",
]
