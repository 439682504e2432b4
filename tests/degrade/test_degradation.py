"""Sampling and applying degradations: sizes, ranges, replay, presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facesr.degrade.degradation import (
    PRESETS,
    DegradeConfig,
    Pools,
    degrade,
    degrade_batch,
    mirror_tile,
    params_from_record,
    sample_degradation,
)
from facesr.degrade.kernels import gaussian_kernel
from facesr.degrade.pools import KernelPool, NoisePool


@pytest.fixture(scope="module")
def pools() -> Pools:
    ks = torch.stack([gaussian_kernel(25, 1.2), gaussian_kernel(25, 2.5, 1.0, 0.6)])
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(6, 3, 32, 32, generator=g) * 0.02
    patches -= patches.mean(dim=(2, 3), keepdim=True)
    return Pools(KernelPool(ks, [{"source": "a"}, {"source": "b"}]),
                 NoisePool(patches, torch.zeros(6, dtype=torch.long), [{"source": "n"}]))


def _hr(h: int = 96, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 3, 1, 1)[0]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_output_is_quarter_size_in_range_on_8bit_grid(pools: Pools, preset: str) -> None:
    hr = _hr()
    p = sample_degradation(np.random.default_rng(1), pools, PRESETS[preset], (24, 16))
    lr = degrade(hr, p)
    assert lr.shape == (3, 24, 16)
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)


def test_same_seed_same_degradation_and_replay(pools: Pools) -> None:
    hr = _hr()
    cfg = PRESETS["paper"]
    a = sample_degradation(np.random.default_rng(7), pools, cfg, (24, 16))
    b = sample_degradation(np.random.default_rng(7), pools, cfg, (24, 16))
    assert a.record == b.record
    assert torch.equal(degrade(hr, a), degrade(hr, b))
    replayed = params_from_record(a.record, pools, (24, 16))
    assert torch.equal(degrade(hr, replayed), degrade(hr, a))
    c = sample_degradation(np.random.default_rng(8), pools, cfg, (24, 16))
    assert not torch.equal(degrade(hr, c), degrade(hr, a))


def test_batch_equals_one_by_one(pools: Pools) -> None:
    hrs = torch.stack([_hr(seed=i) for i in range(3)])
    rng = np.random.default_rng(3)
    ps = [sample_degradation(rng, pools, PRESETS["paper"], (24, 16)) for _ in range(3)]
    batch = degrade_batch(hrs, ps)
    for i in range(3):
        assert torch.allclose(batch[i], degrade(hrs[i], ps[i]), atol=1 / 255 + 1e-6)


def test_synthetic_protocol_noise_level_and_jpeg(pools: Pools) -> None:
    syn = PRESETS["synthetic"]
    assert syn.noise == "gaussian" and syn.noise_sigma == 8.0 and syn.jpeg_prob == 1.0
    recs = [sample_degradation(np.random.default_rng(i), pools, syn, (8, 8)).record
            for i in range(20)]
    assert all(r["jpeg_quality"] == 30 for r in recs)
    # without JPEG and rounding the added noise is Gaussian with sigma 8/255
    cfg = DegradeConfig(noise="gaussian", noise_sigma=8.0, jpeg_prob=0.0, quantize=False)
    hr = torch.full((3, 256, 256), 0.5)
    p = sample_degradation(np.random.default_rng(0), pools, cfg, (64, 64))
    resid = degrade(hr, p) - 0.5
    assert float(resid.std()) * 255 == pytest.approx(8.0, rel=0.05)


def test_jpeg_probability(pools: Pools) -> None:
    rng = np.random.default_rng(0)
    hits = sum(sample_degradation(rng, pools, PRESETS["paper"], (8, 8)).jpeg_quality is not None
               for _ in range(2000))
    assert 0.87 < hits / 2000 < 0.93


def test_pool_noise_is_added_unchanged(pools: Pools) -> None:
    cfg = DegradeConfig(kernel="bicubic", noise="pool", jpeg_prob=0.0, quantize=False)
    hr = torch.full((3, 128, 128), 0.5)
    p = sample_degradation(np.random.default_rng(2), pools, cfg, (32, 32))
    patch = pools.noise.patches[p.record["noise"]["index"]]
    assert torch.allclose(degrade(hr, p) - 0.5, mirror_tile(patch, p.record["noise"]["flip"],
                                                             (32, 32)), atol=1e-6)


def test_mirror_tile_has_no_seams() -> None:
    patch = torch.arange(16.0).reshape(1, 4, 4).expand(3, 4, 4)
    f = mirror_tile(patch, 0, (10, 11))
    assert f.shape == (3, 10, 11)
    assert torch.equal(f[:, :4, :4], patch)
    assert torch.equal(f[:, :, 3], f[:, :, 4]) and torch.equal(f[:, 3], f[:, 4])  # mirrored


def test_missing_pool_and_bad_config(pools: Pools) -> None:
    with pytest.raises(ValueError, match="kernel pool"):
        sample_degradation(np.random.default_rng(0), Pools(), PRESETS["paper"], (8, 8))
    with pytest.raises(ValueError, match="noise pool"):
        sample_degradation(np.random.default_rng(0), Pools(pools.kernels), PRESETS["paper"], (8, 8))
    with pytest.raises(ValueError, match="unknown degradation settings"):
        DegradeConfig.from_dict({"jpeg_prob": 0.5, "blurr": 1})
    assert DegradeConfig.from_dict({"jpeg_quality": 50}).jpeg_quality == (50, 50)
    with pytest.raises(ValueError, match="jpeg_prob"):
        DegradeConfig(jpeg_prob=1.5)


def test_gaussian_kernels_cover_the_sigma_range_and_replay(pools: Pools) -> None:
    cfg = DegradeConfig(kernel="gaussian", blur_sigma=(0.8, 3.0))
    rng = np.random.default_rng(3)
    recs = [sample_degradation(rng, pools, cfg, (16, 16)).record for _ in range(200)]
    sig = np.array([[r["kernel"]["sigma_x"], r["kernel"]["sigma_y"]] for r in recs])
    assert sig.min() >= 0.8 and sig.max() <= 3.0 and sig.max() - sig.min() > 1.8
    p = sample_degradation(np.random.default_rng(5), pools, cfg, (16, 16))
    again = params_from_record(p.record, pools, (16, 16))
    assert torch.allclose(p.kernel, again.kernel, atol=1e-5)


def test_mixed_blur_and_noise_draw_both_kinds_and_keep_old_streams(pools: Pools) -> None:
    rng = np.random.default_rng(0)
    cfg = DegradeConfig(gaussian_prob=0.5, gaussian_noise_prob=0.5)
    recs = [sample_degradation(rng, pools, cfg, (16, 16)).record for _ in range(100)]
    kinds = {isinstance(r["kernel"], dict) for r in recs}
    noise = {r["noise"]["kind"] for r in recs}
    sigmas = [r["noise"]["sigma"] for r in recs if r["noise"]["kind"] == "gaussian"]
    assert kinds == {True, False} and noise == {"gaussian", "pool"}
    assert min(sigmas) >= 4.0 and max(sigmas) <= 12.0
    # with both probabilities 0 nothing extra is drawn: the paper preset draws as before
    a = [sample_degradation(np.random.default_rng(9), pools, PRESETS["paper"], (16, 16)).record
         for _ in range(3)]
    b = [sample_degradation(np.random.default_rng(9), pools,
                            DegradeConfig(gaussian_prob=0.0), (16, 16)).record for _ in range(3)]
    assert a == b and all(isinstance(r["kernel"], int) for r in a)


def test_sharp_preset_and_blur_sigma_validation(pools: Pools) -> None:
    p = sample_degradation(np.random.default_rng(1), Pools(), PRESETS["sharp"], (16, 16))
    assert p.record["kernel"]["kind"] == "gaussian" and p.jpeg_quality == 30
    assert p.record["noise"]["kind"] == "gaussian" and p.record["noise"]["sigma"] == 8.0
    with pytest.raises(ValueError, match="blur_sigma"):
        DegradeConfig(blur_sigma=(2.0, 1.0))
    assert DegradeConfig.from_dict({"blur_sigma": 1.5}).blur_sigma == (1.5, 1.5)
