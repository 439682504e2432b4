"""PatchGAN: a logit map whose size follows the input; norm variants; pix2pix names."""

from __future__ import annotations

import pytest
import torch

from facesr.models import PatchDiscriminator, patch_map_size


@pytest.mark.parametrize("norm", ["batch", "spectral", "instance", "none"])
def test_output_is_a_logit_map_sized_by_input(norm: str) -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=8, norm=norm)
    for h, w in [(128, 128), (64, 96), (33, 47)]:
        y = d(torch.rand(2, 3, h, w))
        assert y.shape == (2, 1, patch_map_size(h), patch_map_size(w))
    assert d(torch.rand(1, 3, 128, 128)).shape[-2:] == (14, 14)  # pix2pix's 70x70 patches
    assert d(torch.rand(1, 3, 256, 256)).shape[-2:] == (30, 30)


def test_each_logit_sees_a_local_patch() -> None:
    """Changing one corner of the input leaves the far corner's logits unchanged."""
    d = PatchDiscriminator(ndf=8, norm="none").eval()
    x = torch.rand(1, 3, 256, 256)
    x2 = x.clone()
    x2[..., :64, :64] = 0
    with torch.no_grad():
        a, b = d(x), d(x2)
    assert not torch.allclose(a[..., :4, :4], b[..., :4, :4])
    torch.testing.assert_close(a[..., 20:, 20:], b[..., 20:, 20:])


def test_pix2pix_layout_and_names() -> None:
    d = PatchDiscriminator(ndf=64, n_layers=3, norm="batch")
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    assert {"model.0.weight", "model.2.weight", "model.3.running_mean", "model.11.bias"} <= set(
        d.state_dict())


def test_spectral_norm_bounds_each_conv() -> None:
    d = PatchDiscriminator(ndf=8, norm="spectral")
    d(torch.rand(1, 3, 64, 64))  # a power-iteration step in train mode
    conv = d.model[0]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.1)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="group")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too small"):
        PatchDiscriminator(ndf=8)(torch.rand(1, 3, 20, 64))
