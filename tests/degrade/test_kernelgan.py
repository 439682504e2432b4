"""KernelGAN: the kernel algebra exactly, the estimator's contract, and recovery of a known blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facesr.degrade import kernelgan as kg
from facesr.degrade.kernels import (
    bicubic_kernel,
    blur_downsample,
    center_of_mass,
    gaussian_kernel,
    normalize_kernel,
)


def test_generator_kernel_is_the_layers_composed() -> None:
    torch.manual_seed(0)
    gen = kg.LinearGenerator()
    k = gen.kernel()
    assert k.shape == (kg.X2_SIZE, kg.X2_SIZE)
    x = torch.rand(2, 3, 40, 40)
    y = x.reshape(6, 1, 40, 40)
    for layer in gen.layers:  # the deep linear net, layer by layer
        y = layer(y)
    y = y.reshape(2, 3, 28, 28)[..., ::2, ::2]  # the stride-2 end
    assert torch.allclose(gen(x), y, atol=1e-6)


def test_compose_x4_equals_two_x2_steps() -> None:
    k2 = gaussian_kernel(kg.X2_SIZE, 1.0, 0.6, 0.7)
    k4 = kg.compose_x4(k2)
    assert k4.shape == (kg.X4_SIZE, kg.X4_SIZE)
    assert center_of_mass(k4) == pytest.approx((12.5, 12.5), abs=1e-3)
    x = torch.rand(3, 96, 96)
    twice = blur_downsample(blur_downsample(x, k2, 2), k2, 2)
    once = blur_downsample(x, k4, 4)
    inner = (slice(None), slice(4, -4), slice(4, -4))  # away from the reflect-padded borders
    assert torch.allclose(twice[inner], once[inner], atol=1e-5)


def test_compose_x4_of_gaussian_is_the_wider_gaussian() -> None:
    # covariances add: S + 4 S = 5 S, so sigmas grow by sqrt(5) with the same angle (for
    # sigmas above ~1 px; narrower ones alias on the dilated copy's 2-px grid)
    k4 = normalize_kernel(kg.compose_x4(gaussian_kernel(kg.X2_SIZE, 1.6, 1.1, 0.4)))
    ref = gaussian_kernel(kg.X4_SIZE, 1.6 * math.sqrt(5), 1.1 * math.sqrt(5), 0.4)
    assert (k4 - ref).abs().sum() < 0.02


def test_compose_x4_of_bicubic_x2_is_close_to_bicubic_x4() -> None:
    k4 = normalize_kernel(kg.compose_x4(bicubic_kernel(2, kg.X2_SIZE)), clip_negative=False)
    ref = bicubic_kernel(4, kg.X4_SIZE)
    assert float(torch.linalg.vector_norm(k4 - ref)) < 0.25 * float(torch.linalg.vector_norm(ref))


def test_kernel_losses_are_zero_for_an_ideal_kernel() -> None:
    losses = kg.kernel_losses(gaussian_kernel(kg.X2_SIZE, 0.8).double())
    assert float(losses["sum"]) < 1e-6 and float(losses["centre"]) < 1e-6
    assert float(losses["boundary"]) < 1e-3
    off = kg.kernel_losses(torch.roll(gaussian_kernel(kg.X2_SIZE, 0.8), 3, dims=1) * 2)
    assert float(off["sum"]) == pytest.approx(1.0, abs=1e-5)
    assert float(off["centre"]) == pytest.approx(3.0, abs=0.05)


def test_estimate_kernel_contract() -> None:
    img = torch.rand(3, 48, 40)
    calls: list[tuple[int, int]] = []
    est = kg.estimate_kernel(img, iters=8, seed=1, callback=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 8) for i in range(1, 9)]
    for k, size in ((est.kernel, kg.X4_SIZE), (est.kernel_x2, kg.X2_SIZE)):
        assert k.shape == (size, size) and k.dtype == torch.float32
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-5)
        assert float(k.min()) >= 0
        c = (size - 1) / 2 + 0.5
        assert center_of_mass(k) == pytest.approx((c, c), abs=0.02)
    again = kg.estimate_kernel(img, iters=8, seed=1)
    assert torch.equal(est.kernel, again.kernel)  # seeded: same image, same seed, same kernel


def test_x2_patches_apply_like_the_strided_convolution() -> None:
    x = torch.rand(2, 3, 41, 38)
    k = torch.rand(kg.X2_SIZE, kg.X2_SIZE)
    patches = kg.x2_patches(x, kg.X2_SIZE)
    assert torch.allclose(kg.apply_x2_patches(patches, k, x.shape), kg.apply_x2(x, k), atol=1e-5)


def test_discriminator_layouts_are_the_same_function() -> None:
    torch.manual_seed(0)
    disc = kg.PatchDiscriminator().eval()  # eval: no power iteration, so both see one weight
    x = torch.rand(2, 3, 32, 32)
    rows = disc(x)
    disc.rows = False
    assert rows.shape == (2, 1, 26, 26)
    assert torch.allclose(rows, disc(x), atol=1e-5)


@pytest.mark.parametrize("recipe", kg.RECIPES)
def test_both_recipes_run_and_are_seeded(recipe: str) -> None:
    img = torch.rand(3, 40, 44)
    a = kg.estimate_kernel(img, iters=6, seed=2, recipe=recipe)
    b = kg.estimate_kernel(img, iters=6, seed=2, recipe=recipe)
    assert torch.equal(a.kernel, b.kernel) and float(a.kernel.sum()) == pytest.approx(1, abs=1e-5)


def test_estimate_kernels_in_parallel_matches_sequential() -> None:
    imgs = [torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run on one thread: compare like with like
    try:
        done: list[int] = []
        seq = kg.estimate_kernels(imgs, jobs=1, iters=10, seed=[3, 4],
                                  callback=lambda i, est: done.append(i))
        par = kg.estimate_kernels(imgs, jobs=2, iters=10, seed=[3, 4])
        single = kg.estimate_kernel(imgs[1], iters=10, seed=4)
    finally:
        torch.set_num_threads(threads)
    assert done == [0, 1]
    for a, b in zip(seq, par, strict=True):
        assert torch.equal(a.kernel, b.kernel) and torch.equal(a.kernel_x2, b.kernel_x2)
    assert torch.equal(par[1].kernel, single.kernel) and par[1].seed == 4
    assert not torch.equal(par[0].kernel, par[1].kernel)


def test_settings_default_to_the_module_constants_and_reach_the_workers() -> None:
    img = torch.rand(3, 64, 72, generator=torch.Generator().manual_seed(5))
    plain = kg.estimate_kernel(img, iters=12, seed=1)
    same = kg.estimate_kernel(img, iters=12, seed=1, out_crop=kg.OUT_CROP,
                              w_bicubic=kg.W_BICUBIC, w_sparse=kg.W_SPARSE)
    assert torch.equal(plain.kernel, same.kernel)
    iters, thin = kg.preset("thin")
    assert iters == 6000 and "iters" not in thin and kg.preset("default") == (kg.DEFAULT_ITERS, {})
    other = kg.estimate_kernel(img, iters=12, seed=1, **thin)
    assert not torch.equal(plain.kernel, other.kernel)  # the settings are used
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        par = kg.estimate_kernels([img, img], jobs=2, iters=12, seed=1, options=thin)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(par[0].kernel, other.kernel) and torch.equal(par[1].kernel, other.kernel)
    with pytest.raises(ValueError, match="out_crop"):
        kg.estimate_kernel(img, iters=1, out_crop=4)
    with pytest.raises(ValueError, match="one of default, thin"):
        kg.preset("sharp")


def test_estimate_kernel_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="smaller than the 32 px minimum"):
        kg.estimate_kernel(torch.rand(3, 31, 100), iters=1)
    with pytest.raises(ValueError, match="RGB"):
        kg.estimate_kernel(torch.rand(1, 64, 64), iters=1)
    with pytest.raises(ValueError, match="iters"):
        kg.estimate_kernel(torch.rand(3, 64, 64), iters=0)
    with pytest.raises(ValueError, match="recipe"):
        kg.estimate_kernel(torch.rand(3, 64, 64), iters=1, recipe="paper")
    with pytest.raises(ValueError, match="seeds"):
        kg.estimate_kernels([torch.rand(3, 64, 64)], iters=1, seed=[1, 2])


def _dead_leaves(size: int, seed: int) -> torch.Tensor:
    """A scale-invariant synthetic image (overlapping discs of random grey, radius ~ 1/r^3)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 0.5, np.float32)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(600):
        r = size / 6 * (1 - rng.random()) ** 2 + 2
        cy, cx = rng.uniform(0, size, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random()
    return torch.from_numpy(img).expand(3, -1, -1).contiguous()


def _spread(k: torch.Tensor) -> float:
    """Second moment of a kernel about its centre of mass (sigma_x^2 + sigma_y^2)."""
    k = k.double() / k.sum()
    idx = torch.arange(k.shape[0], dtype=torch.float64)
    cy, cx = center_of_mass(k)
    return float((k * ((idx[:, None] - cy) ** 2 + (idx[None, :] - cx) ** 2)).sum())


def test_kernelgan_follows_the_blur_of_the_image() -> None:
    hr = _dead_leaves(384, 0)
    narrow, wide = gaussian_kernel(kg.X4_SIZE, 1.0), gaussian_kernel(kg.X4_SIZE, 4.0)
    est_narrow = kg.estimate_kernel(blur_downsample(hr, narrow, 4), iters=300, seed=0).kernel
    est_wide = kg.estimate_kernel(blur_downsample(hr, wide, 4), iters=300, seed=0).kernel
    # the estimate depends on the image's blur, not only on the priors
    assert _spread(est_wide) > 1.5 * _spread(est_narrow)
    baseline = kg.centred_l2(bicubic_kernel(4, kg.X4_SIZE), wide)
    assert kg.centred_l2(est_wide, wide) < 0.6 * baseline
