"""Fixtures shared by the command tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facesr.models import RRDBNet, save_rrdb


@pytest.fixture(scope="session")
def nearest(tmp_path_factory) -> Path:
    """A tiny x4 RRDBNet file that is exactly nearest-neighbour upscaling (RGB carried in 3
    channels, every other weight zero)."""
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for conv in (net.conv_first, net.conv_up1, net.conv_up2, net.conv_hr, net.conv_last):
            for c in range(3):
                conv.weight[c, c, 1, 1] = 1.0
    return save_rrdb(tmp_path_factory.mktemp("model") / "nearest.safetensors", net)
