"""L1 and relativistic average GAN losses: values and gradient directions."""

from __future__ import annotations

import math

import pytest
import torch

from facesr.losses import l1, ragan_d_loss, ragan_g_loss


def test_l1_is_mean_absolute_error() -> None:
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.25)
    b[0, 0, 0, 0] = 1.25
    assert l1(a, b).item() == pytest.approx(0.25 + 1 / 96)
    with pytest.raises(ValueError, match="equal shapes"):
        l1(a, b[:1])


def test_equal_logits_give_log2() -> None:
    z = torch.zeros(2, 1, 5, 5)
    assert ragan_d_loss(z, z).item() == pytest.approx(math.log(2))
    assert ragan_g_loss(z, z).item() == pytest.approx(math.log(2))


def test_d_loss_falls_as_real_rises_above_fake() -> None:
    fake = torch.zeros(4, 1, 6, 6)
    losses = [ragan_d_loss(fake + gap, fake).item() for gap in (-2.0, 0.0, 2.0, 4.0)]
    assert losses == sorted(losses, reverse=True)
    glosses = [ragan_g_loss(fake + gap, fake).item() for gap in (-2.0, 0.0, 2.0, 4.0)]
    assert glosses == sorted(glosses)


def test_gradient_signs() -> None:
    torch.manual_seed(0)
    real = torch.randn(3, 1, 4, 4, requires_grad=True)
    fake = torch.randn(3, 1, 4, 4, requires_grad=True)
    gr, gf = torch.autograd.grad(ragan_d_loss(real, fake), (real, fake))
    assert gr.sum() < 0 < gf.sum()  # D pushes real logits up, fake down
    gr, gf = torch.autograd.grad(ragan_g_loss(real, fake), (real, fake))
    assert gf.sum() < 0 < gr.sum()  # G pushes fake logits up (relative to real)


def test_matches_esrgan_formula_and_shift_invariance() -> None:
    torch.manual_seed(1)
    real, fake = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    d = (bce(real - fake.mean(), torch.ones_like(real))
         + bce(fake - real.mean(), torch.zeros_like(fake))) / 2
    torch.testing.assert_close(ragan_d_loss(real, fake), d)
    torch.testing.assert_close(ragan_d_loss(real + 3, fake + 3), d)  # only differences count
