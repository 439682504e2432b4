"""Relativistic average GAN losses (ESRGAN), BCE-with-logits form, averaged over patches.

With C(x) the discriminator's logits (one per patch for a PatchGAN) and E[.] the mean over the
whole batch and all patches (as ESRGAN / BasicSR / RealSR take ``torch.mean``):

    D_Ra(a, b) = C(a) - E[C(b)]
    L_D = ( BCE(D_Ra(real, fake), 1) + BCE(D_Ra(fake, real), 0) ) / 2
    L_G = ( BCE(D_Ra(real, fake), 0) + BCE(D_Ra(fake, real), 1) ) / 2

Nothing is detached here: in the discriminator step pass ``fake_logits`` of ``fake.detach()``;
in the generator step the real logits carry no generator gradient anyway (pass them detached
to save memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(real_logits: Tensor, fake_logits: Tensor) -> None:
    if real_logits.numel() == 0 or fake_logits.numel() == 0:
        raise ValueError("RaGAN losses need non-empty logits")


def ragan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss: real patches should look more real than the average fake.

    Args:
        real_logits: D's logits on real images, any shape, e.g. (N, 1, h, w).
        fake_logits: D's logits on generated images, any shape.

    Returns:
        Scalar loss.
    """
    _check(real_logits, fake_logits)
    rel_real = real_logits - fake_logits.mean()
    rel_fake = fake_logits - real_logits.mean()
    loss_real = F.binary_cross_entropy_with_logits(rel_real, torch.ones_like(rel_real))
    loss_fake = F.binary_cross_entropy_with_logits(rel_fake, torch.zeros_like(rel_fake))
    return (loss_real + loss_fake) / 2


def ragan_g_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Generator (adversarial) loss: the D loss with the targets swapped.

    Args:
        real_logits: D's logits on real images, any shape.
        fake_logits: D's logits on generated images (not detached), any shape.

    Returns:
        Scalar loss.
    """
    _check(real_logits, fake_logits)
    rel_real = real_logits - fake_logits.mean()
    rel_fake = fake_logits - real_logits.mean()
    loss_real = F.binary_cross_entropy_with_logits(rel_real, torch.zeros_like(rel_real))
    loss_fake = F.binary_cross_entropy_with_logits(rel_fake, torch.ones_like(rel_fake))
    return (loss_real + loss_fake) / 2
