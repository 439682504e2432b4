"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# The suite sets its own thread count: on a busy 2-core machine OpenMP threads waiting for each
# other made one KernelGAN test take more than 6 minutes. Tests that start subprocesses pass
# the same environment on.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    if not os.environ.get(_var, "").strip().isdigit():
        os.environ[_var] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches (near-duplicate signatures) go to a folder of the test session, never ~/.cache."""
    monkeypatch.setenv("FACESR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))

_DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared"
SHARED = Path(os.environ.get("FACESR_SHARED", _DEFAULT))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder beside the project (data and third-party weights)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder at {SHARED.resolve()} (absent here)")
    return SHARED.resolve()


@pytest.fixture(scope="session")
def nearest(tmp_path_factory) -> Path:
    """A tiny x4 RRDBNet file that is exactly nearest-neighbour upscaling (RGB carried in 3
    channels, every other weight zero). Used by the command tests (tests/cli, tests/reliability).
    """
    import torch

    from facesr.models import RRDBNet, save_rrdb

    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for conv in (net.conv_first, net.conv_up1, net.conv_up2, net.conv_hr, net.conv_last):
            for c in range(3):
                conv.weight[c, c, 1, 1] = 1.0
    return save_rrdb(tmp_path_factory.mktemp("model") / "nearest.safetensors", net)
