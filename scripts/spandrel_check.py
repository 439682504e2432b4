"""Check that weight files load in spandrel (the loader chaiNNer uses) with facesr's output.

    pip install --no-deps spandrel==0.4.2 einops     # not facesr dependencies
    python scripts/spandrel_check.py src/facesr/models/weights/*.safetensors

spandrel imports every architecture it knows at start, and one of them (LaMa) imports
torchvision, which does not import beside this project's torch; when torchvision is missing it
is replaced by an empty stand-in (no architecture facesr writes uses it). For each file: the
architecture spandrel detects, its scale, and the largest difference between spandrel's model
and facesr's on a random 20 px input (float32); exit 1 when a file does not load or differs.
"""

from __future__ import annotations

import importlib.util
import sys
import types


class _Stub(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(name) if name[0].islower() else type(name, (), {})


def main(paths: list[str]) -> int:
    if importlib.util.find_spec("torchvision") is None:
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                     "torchvision.ops", "torchvision.models", "torchvision.transforms.v2"):
            sys.modules[name] = _Stub(name)
    import torch
    from safetensors.torch import load_file
    from spandrel import ModelLoader

    from facesr.models.rrdb import load_rrdb

    torch.manual_seed(0)
    x = torch.rand(1, 3, 20, 20)
    bad = 0
    for p in paths:
        try:
            d = ModelLoader().load_from_state_dict(load_file(p))
        except Exception as e:  # noqa: BLE001 - report and go on
            first = str(e).replace("\n", " ").replace("\t", "")[:160]
            print(f"{p}: spandrel cannot load it: {first}")
            bad += 1
            continue
        with torch.no_grad():
            diff = float((d.model.eval().float()(x) - load_rrdb(p).eval()(x)).abs().max())
        print(f"{p}: spandrel {d.architecture.name}, x{d.scale}, max difference {diff:.2e}")
        bad += diff > 1e-4
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
