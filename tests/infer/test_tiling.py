"""Tiled inference equals whole-image inference; any size gives exactly 4H x 4W."""

from __future__ import annotations

import pytest
import torch

from facesr.infer.pipeline import torch_runner
from facesr.infer.tiling import receptive_radius, reflect_pad, tile_grid, upscale_tiled
from facesr.models import RRDBNet

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


@pytest.fixture(scope="module")
def run():
    torch.manual_seed(0)
    net = RRDBNet(**TINY).eval()
    for p in net.parameters():  # larger weights than the 0.1-scaled init: a sharper test
        p.data.mul_(5.0)
    return torch_runner(net)


@pytest.mark.parametrize("size", [(37, 53), (64, 31), (45, 45)])
def test_tiled_equals_whole_image_when_overlap_covers_receptive_field(run, size):
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, *size, generator=g)
    whole = upscale_tiled(img, run, tile=0)
    tiled = upscale_tiled(img, run, tile=16, overlap=receptive_radius(TINY["num_block"]))
    assert tiled.shape == whole.shape == (3, 4 * size[0], 4 * size[1])
    assert (tiled - whole).abs().max() < 1e-3
    assert (tiled - whole).abs().max() < 1e-5  # in fact float rounding only


def test_short_overlap_differs_only_slightly(run):
    img = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(2))
    whole = upscale_tiled(img, run, tile=0)
    tiled = upscale_tiled(img, run, tile=16, overlap=4)
    diff = (tiled - whole).abs()
    assert diff.max() > 0 and diff.mean() < 0.05 * whole.abs().mean()


def test_receptive_radius_bounds_the_influence_of_a_pixel(run):
    img = torch.rand(3, 60, 60, generator=torch.Generator().manual_seed(3))
    bumped = img.clone()
    bumped[:, 30, 30] += 0.5
    changed = (upscale_tiled(bumped, run, tile=0) - upscale_tiled(img, run, tile=0)).abs()
    ys, xs = torch.nonzero(changed.amax(0) > 0, as_tuple=True)
    r = receptive_radius(TINY["num_block"])
    assert ys.min() >= 4 * (30 - r) and ys.max() < 4 * (31 + r)
    assert xs.min() >= 4 * (30 - r) and xs.max() < 4 * (31 + r)
    assert ys.min() < 4 * 30 - 40  # the radius is not a gross overestimate


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (8, 300), (17, 3), (129, 65)])
def test_output_is_exactly_4x_for_odd_and_tiny_sizes(run, size):
    out = upscale_tiled(torch.rand(3, *size), run, tile=32, overlap=8)
    assert out.shape == (3, 4 * size[0], 4 * size[1])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_small_inputs_are_reflect_padded_then_cropped():
    img = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)
    padded, (left, right, top, bottom) = reflect_pad(img, 16)
    assert padded.shape == (2, 16, 16) and (left, right, top, bottom) == (6, 7, 6, 7)
    assert torch.equal(padded[:, top:top + 3, left:left + 3], img)
    assert torch.equal(reflect_pad(img, 2)[0], img)
    one = reflect_pad(torch.ones(1, 1, 1), 5)[0]
    assert one.shape == (1, 5, 5) and torch.equal(one, torch.ones(1, 5, 5))

    def up(x):  # nearest x4: padding must not leak into the output
        return x.repeat_interleave(4, -1).repeat_interleave(4, -2)

    rgb = torch.rand(3, 5, 6)
    assert torch.equal(upscale_tiled(rgb, up, min_side=16), up(rgb[None])[0])


def test_tile_grid_covers_every_pixel_once_with_near_equal_tiles():
    for size in (1, 7, 64, 65, 100, 257):
        for tile in (1, 16, 64, 300):
            parts = tile_grid(size, tile)
            assert parts[0][0] == 0 and parts[-1][1] == size
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            lengths = [b - a for a, b in parts]
            assert max(lengths) <= tile and max(lengths) - min(lengths) <= 1


def test_a_network_that_is_not_x4_is_refused():
    with pytest.raises(ValueError, match="x4 model"):
        upscale_tiled(torch.rand(3, 8, 8), lambda x: x, tile=0)
