"""RRDBNet: size contract, state-dict compatibility, file round trip, and that it can learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facesr.losses import l1
from facesr.models import RRDBNet, arch_from_state_dict, convert_state_dict, load_rrdb, save_rrdb

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


@pytest.fixture
def one_thread():
    """Tiny nets run fastest single-threaded (and do not fight other jobs for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**TINY)


@pytest.mark.parametrize("hw", [(7, 9), (13, 5), (1, 1), (32, 32)])
def test_output_is_exactly_4x_for_any_size(tiny: RRDBNet, hw: tuple[int, int]) -> None:
    y = tiny(torch.rand(2, 3, *hw))
    assert y.shape == (2, 3, 4 * hw[0], 4 * hw[1])


def test_fully_convolutional_crop_consistency(tiny: RRDBNet, one_thread) -> None:
    """Farther than the receptive field (~19 LR px) from a cut, a crop's output is unchanged."""
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        whole, part = tiny(x), tiny(x[..., :48, :48])
    torch.testing.assert_close(part[..., :112, :112], whole[..., :112, :112])  # LR 0..27
    assert not torch.allclose(part[..., 184:, 184:], whole[..., 184:192, 184:192])  # at the cut


def test_basicsr_parameter_names(tiny: RRDBNet) -> None:
    keys = set(tiny.state_dict())
    for k in ("conv_first.weight", "body.0.rdb1.conv1.weight", "body.0.rdb3.conv5.bias",
              "conv_body.weight", "conv_up1.weight", "conv_up2.weight", "conv_hr.weight",
              "conv_last.bias"):
        assert k in keys
    assert len(keys) == 2 * (1 + 15 + 5)


def test_basicsr_wrapped_state_dict_loads_strictly(tiny: RRDBNet) -> None:
    sd = {k: torch.randn_like(v) for k, v in tiny.state_dict().items()}
    other = RRDBNet(**TINY)
    other.load_state_dict(convert_state_dict({"params_ema": sd, "params": {}}), strict=True)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in sd.items())
    other.load_state_dict(convert_state_dict({"params": sd}), strict=True)


def test_old_esrgan_names_load(tiny: RRDBNet) -> None:
    renames = {"conv_body.": "trunk_conv.", "conv_up": "upconv", "conv_hr.": "HRconv.",
               ".rdb": ".RDB", "body.": "RRDB_trunk."}
    old = {}
    for k, v in tiny.state_dict().items():
        for a, b in renames.items():
            k = k.replace(a, b)
        old[k] = v.clone()
    assert "RRDB_trunk.0.RDB2.conv3.weight" in old and "HRconv.weight" in old
    other = RRDBNet(**TINY)
    other.load_state_dict(convert_state_dict(old), strict=True)
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(other(x), tiny(x))


def test_unknown_keys_still_fail_strict_loading(tiny: RRDBNet) -> None:
    sd = convert_state_dict(tiny.state_dict()) | {"extra.weight": torch.zeros(1)}
    with pytest.raises(RuntimeError, match="extra.weight"):
        RRDBNet(**TINY).load_state_dict(sd, strict=True)


def test_arch_is_inferred_from_state_dict() -> None:
    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4, scale=2)
    assert arch_from_state_dict(net.state_dict()) == net.arch()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_safetensors_round_trip(tiny: RRDBNet, tmp_path, dtype: torch.dtype) -> None:
    path = save_rrdb(tmp_path / "g.safetensors", tiny, dtype=dtype, source="test")
    back = load_rrdb(path)
    assert back.arch() == tiny.arch()
    for k, v in tiny.state_dict().items():
        expect = v if k.endswith(".bias") else v.to(dtype).float()  # biases stay fp32
        assert torch.equal(back.state_dict()[k], expect), k


def test_pth_file_loads_with_old_names(tiny: RRDBNet, tmp_path) -> None:
    torch.save({"params_ema": tiny.state_dict()}, tmp_path / "g.pth")
    assert load_rrdb(tmp_path / "g.pth").arch() == tiny.arch()


def test_scale_2_and_1_follow_basicsr() -> None:
    for scale in (2, 1):
        net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale)
        assert net(torch.rand(1, 3, 8, 12)).shape == (1, 3, 8 * scale, 12 * scale)
    with pytest.raises(ValueError, match="divisible by 4"):
        RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=1)(torch.rand(1, 3, 6, 8))


def test_bad_input_is_rejected(tiny: RRDBNet) -> None:
    with pytest.raises(ValueError, match="expected"):
        tiny(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="scale"):
        RRDBNet(scale=3)


def test_tiny_net_overfits_one_pair_with_l1(one_thread) -> None:
    """32x32 -> 128x128: L1 falls at least 10x in 250 Adam steps (~5 s)."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    hr = torch.stack([0.5 + 0.4 * torch.sin(6 * xx), 0.5 + 0.4 * torch.cos(5 * yy),
                      0.3 + 0.5 * xx * yy])[None]
    lr = F.interpolate(hr, scale_factor=0.25, mode="area")
    net = RRDBNet(**TINY)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = l1(net(lr), hr).item()
    for _ in range(250):
        loss = l1(net(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10


def test_a_loaded_model_does_not_change_when_its_file_is_overwritten(tmp_path) -> None:
    import shutil

    from facesr.models.rrdb import load_rrdb

    a, b = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), RRDBNet(num_feat=8, num_block=1,
                                                                       num_grow_ch=4)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.5)
    fa, fb = save_rrdb(tmp_path / "a.safetensors", a), save_rrdb(tmp_path / "b.safetensors", b)
    model = load_rrdb(fa).eval()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
        with open(fa, "r+b") as dst, open(fb, "rb") as src:  # in place, as cp does
            shutil.copyfileobj(src, dst)
        after = model(x)
    assert torch.equal(before, after)


def test_widening_the_growth_keeps_the_function_and_trains_the_new_channels(one_thread) -> None:
    from facesr.models.rrdb import widen_growth

    torch.manual_seed(0)
    small = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4).eval()
    wide = widen_growth(small, 8).eval()
    assert wide.arch() == {**small.arch(), "num_grow_ch": 8}
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        assert torch.allclose(wide(x), small(x), atol=1e-6)
    loss = (wide(x) - torch.rand(2, 3, 48, 40)).abs().mean()
    loss.backward()
    conv2 = wide.body[0].rdb1.conv2
    # the weights that read the new channels of x1 (zero at first) get a gradient
    assert conv2.weight.grad[:, 8 + 4:8 + 8].abs().sum() > 0
    assert wide.body[0].rdb1.conv1.weight[4:].abs().sum() > 0  # the new channels are alive
    with pytest.raises(ValueError, match="not more than"):
        widen_growth(small, 4)
