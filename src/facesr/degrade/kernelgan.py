"""KernelGAN: estimate an image's x4 blur kernel from the image alone.

After Bell-Kligler, Shocher and Irani, "Blind Super-Resolution Kernel Estimation using an
Internal-GAN" (NeurIPS 2019), written from the paper's description. A deep *linear* generator G
(convolutions 7, 5, 3, 1, 1, 1 with 64 channels, no biases, no non-linearities: a 13x13
receptive field, stride 2 at the end) learns to downscale the image x2 so that a patch
discriminator D cannot tell G's outputs from crops of the image itself. Since G is linear it is
one 13x13 kernel; the x4 kernel is that kernel convolved with its own copy dilated by 2.

Choices made here (the paper leaves them open or they are ours):

- Speed: G is trained through its factors (the deep linear parametrisation is what helps the
  optimisation), but its forward pass first collapses the factors into the 13x13 kernel (a
  chain of transposed convolutions on a 1x1 map, ~1M multiply-adds) and then applies that
  single kernel. This is the same function with the same gradients as running the six layers
  over the crop, about 40x cheaper. What remains is mostly D (~2/3 of an iteration).
- Recipes (``recipe=``): "fast" (the default) runs D forward once per iteration and
  backpropagates that one graph twice, for G's loss into G only and for D's loss into D only.
  This is the same computation as a D forward per step (the G and D steps see the same crops,
  the same G output, since D's step used G's output from before G's update, and the same D
  weights), except that D's spectral norms make one power iteration per iteration rather than
  two. It also runs D's 1x1 layers with pixels as rows (2-D matrix products and batch norm)
  and G's strided kernel as one matrix-vector product over unfolded windows: same functions,
  fewer and cheaper kernels, ~0.6x the CPU time per iteration. "legacy" is the code before
  (two D forwards; bit for bit the estimates made with it), kept to compare against.
- Iterations: ``DEFAULT_ITERS`` = 3000, as in the paper (~60 s of one CPU thread with "fast").
  The schedules (bicubic phase, learning-rate drops, averaging window) are fractions of the
  iterations, but fewer iterations lose accuracy: measured, 2000 gave a lower re-degradation
  PSNR than 3000 in all 7 cases tried (README, "Measured figures"). Two crops per iteration
  (``batch=2``) cost ~1.5x an iteration: 2000 such iterations took the CPU time of 3000 single
  ones and were less accurate (mean L2 0.0513 vs 0.0459, re-degradation PSNR -2.1 dB, 8
  cases), so ``BATCH`` stays 1.
- Channels: G applies its one kernel to each RGB channel (blur is shared by the channels);
  D sees RGB patches. A grey image simply has three equal channels.
- Crops: G sees a 64x64 crop plus the 6-px margin its valid 13x13 kernel eats (76x76), giving
  a 32x32 output; D compares it with 32x32 crops of the input. Smaller images use the largest
  crop that fits (minimum side ``MIN_SIDE``). Crop positions are drawn up front, with
  probability 0.9 proportional to the local gradient energy of the luminance and 0.1 uniform,
  so flat regions (which carry no information about the kernel) are rarely used.
- Losses: least-squares GAN loss; on the kernel, ``W_SUM |1 - sum k|``, ``W_CENTRE`` times the
  distance of the centre of mass from 6.5 (``kernels.py``'s convention), ``W_BOUNDARY`` times
  the mass outside a disc, ``W_SPARSE * sum |k|^0.5`` (switched on after the bicubic phase;
  its weight is 0 by default: measured, any weight that matters (0.02 and up) pulls every
  estimate towards one narrow kernel whatever the image's blur),
  and ``W_BICUBIC`` times the MSE between G's output and a bicubic x2 downscale of its input,
  decaying to zero over the first ``BICUBIC_FRACTION`` of the iterations. G first fits the
  bicubic kernel directly (``PREFIT_STEPS`` cheap kernel-space steps): a bicubic-shaped start.
- Result: the kernel is averaged over the last ``AVERAGE_FRACTION`` of the iterations (G is
  linear, so the average is itself a kernel) to damp the GAN's iteration-to-iteration jitter.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.parametrizations import spectral_norm

from facesr.degrade.kernels import (
    bicubic_kernel,
    kernel_centre,
    normalize_kernel,
    principal_widths,
)

log = logging.getLogger(__name__)

X2_SIZE = 13  # side of the x2 kernel (G's receptive field)
X4_SIZE = 25  # side of the composed x4 kernel
G_LAYERS = (7, 5, 3, 1, 1, 1)
G_CHANNELS = 64
D_CHANNELS = 64
D_DEPTH = 7  # convolutions in D
BATCH = 1  # crops per iteration
OUT_CROP = 32  # G's output / D's input patch side
MIN_SIDE = 32  # smallest image side KernelGAN accepts (G output 10x10, D map 4x4)

LR = 2e-4
BETAS = (0.5, 0.999)
W_SUM, W_CENTRE, W_BOUNDARY, W_SPARSE, W_BICUBIC = 0.5, 1.0, 0.5, 0.0, 5.0
W_NEGATIVE = 1.0
BICUBIC_FRACTION = 0.1
PREFIT_STEPS = 300
AVERAGE_FRACTION = 0.3
LR_DECAY_AT = (0.9, 0.95)  # fractions of the iterations where both learning rates drop x10
LR_DECAY = 0.1
# "fast": one D forward per iteration shared by the G and D steps (one spectral-norm power
# iteration per iteration); "legacy": a D forward for each step, as before (2x the D forwards)
RECIPES = ("fast", "legacy")
DEFAULT_ITERS = 3000
# named settings (``facesr adapt --kernel-prior``; ``estimate_kernel`` keywords, "iters" as
# the default iterations). "default": the module's constants above. "thin": G sees 64 px
# output crops, no bicubic phase, a light sparsity prior, twice the iterations: 4-7x the CPU
# time. It is a prior, not a better estimator (README): closer on thin anisotropic blur
# (benchmarks/adapt.py's camera, 4.0 x 1.0 HR px: centred L2 0.061 against 0.087-0.093;
# astronaut 3.5 x 1.0: 0.044 against 0.059), farther on average over natural images and
# kernels (benchmarks/kernel_estimation.py, 8 cases: mean L2 0.068 against 0.056; astronaut
# 4.0 x 2.0: 0.084 against 0.020).
PRESETS: dict[str, dict] = {
    "default": {},
    "thin": {"iters": 6000, "out_crop": 64, "w_bicubic": 0.0, "w_sparse": 0.005},
}


def preset(name: str) -> tuple[int, dict]:
    """``PRESETS[name]`` as (its default iterations, its other ``estimate_kernel`` keywords).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown KernelGAN preset {name!r}: one of {', '.join(PRESETS)}")
    options = dict(PRESETS[name])
    return options.pop("iters", DEFAULT_ITERS), options


def pool_settings(iters: int, seed: int, prior: str = "default") -> dict:
    """The settings a kernel pool records for estimates made here (``facesr pool kernels``
    and ``facesr adapt`` alike): estimator, x2 kernel size, iterations and seed, and for a
    ``prior`` other than "default" its name and ``PRESETS`` options (so pools made with the
    default setting keep the records they always had).

    Raises:
        ValueError: an unknown prior.
    """
    options = preset(prior)[1]
    settings = {"estimator": "kernelgan", "x2_size": X2_SIZE, "iters": iters, "seed": seed}
    if prior != "default":
        settings.update(prior=prior, **options)
    return settings


@dataclass(frozen=True)
class KernelEstimate:
    """One image's estimate: ``kernel`` (25, 25) for x4, ``kernel_x2`` (13, 13), both float32
    on the CPU, summing to 1 and centred; ``losses`` are the final loss terms."""

    kernel: Tensor
    kernel_x2: Tensor
    iters: int
    seed: int
    losses: dict[str, float] = field(default_factory=dict)


class LinearGenerator(nn.Module):
    """Deep linear x2 downscaler whose effective 13x13 kernel is ``kernel()``."""

    def __init__(self, sizes: tuple[int, ...] = G_LAYERS, channels: int = G_CHANNELS) -> None:
        super().__init__()
        chans = [1] + [channels] * (len(sizes) - 1) + [1]
        self.layers = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], s, bias=False) for i, s in enumerate(sizes))

    def kernel(self) -> Tensor:
        """The single kernel all layers amount to (the adjoint chain on a 1x1 map).

        Shape: -> (K, K), K = 1 + sum(size - 1).
        """
        w0 = self.layers[0].weight
        y = torch.ones(1, 1, 1, 1, device=w0.device, dtype=w0.dtype)
        for layer in reversed(self.layers):
            y = F.conv_transpose2d(y, layer.weight)
        return y[0, 0]

    def forward(self, x: Tensor) -> Tensor:
        """Valid cross-correlation with ``kernel()``, stride 2, each channel alike.

        Shape: (N, C, H, W) -> (N, C, (H - K) // 2 + 1, (W - K) // 2 + 1).
        """
        return apply_x2(x, self.kernel())


def apply_x2(x: Tensor, kernel: Tensor) -> Tensor:
    """Valid cross-correlation of every channel with one kernel, keeping every 2nd pixel.

    Shape: (N, C, H, W), kernel (K, K) -> (N, C, (H - K) // 2 + 1, (W - K) // 2 + 1).
    """
    n, c, h, w = x.shape
    out = F.conv2d(x.reshape(n * c, 1, h, w), kernel[None, None], stride=2)
    return out.reshape(n, c, *out.shape[-2:])


def x2_patches(x: Tensor, size: int) -> Tensor:
    """Every ``size``-sided window of every channel at stride 2, one window a row.

    ``apply_x2_patches`` then applies a kernel as one matrix-vector product, whose backward is
    another: ~2x cheaper on a CPU than a 1-channel strided ``conv2d`` and its weight gradient.
    Shape: (N, C, H, W) -> (N * C * OH * OW, size * size), OH = (H - size) // 2 + 1.
    """
    n, c, h, w = x.shape
    return x.reshape(n * c, h, w).unfold(1, size, 2).unfold(2, size, 2).reshape(-1, size * size)


def apply_x2_patches(patches: Tensor, kernel: Tensor, shape: torch.Size) -> Tensor:
    """``apply_x2(x, kernel)`` from ``patches = x2_patches(x, K)``, ``shape = x.shape``.

    Shape: (M, K * K), kernel (K, K) -> (N, C, OH, OW).
    """
    n, c, h, w = shape
    size = kernel.shape[-1]
    return torch.mv(patches, kernel.reshape(-1)).reshape(
        n, c, (h - size) // 2 + 1, (w - size) // 2 + 1)


class PatchDiscriminator(nn.Module):
    """Fully convolutional: a 7x7 conv, then 1x1 conv + normalisation + ReLU blocks, a sigmoid.

    Every layer is spectrally normalised. The 1x1 convolutions run as matrix products over the
    pixels (several times faster on a CPU than 1x1 ``conv2d``). The normalisation is BatchNorm
    in training mode over everything in one call: call it on real and fake patches *together*
    (both D and G steps do). Measured (see ``benchmarks/kernel_estimation.py``): with
    per-patch statistics (instance norm, or BatchNorm on a batch of one) D tells patches apart
    by their overall edge density, which only ever more blur can match, and every estimate
    drifts to the same wide kernel; with joint statistics D's confusion peaks near the true
    kernel's width.
    Shape: (N, C, P, P) -> (N, 1, P - 6, P - 6).
    """

    def __init__(self, in_channels: int = 3, channels: int = D_CHANNELS,
                 depth: int = D_DEPTH, rows: bool = True) -> None:
        super().__init__()
        self.rows = rows
        self.first = spectral_norm(nn.Conv2d(in_channels, channels, 7))
        self.mids = nn.ModuleList(spectral_norm(nn.Linear(channels, channels, bias=False))
                                  for _ in range(depth - 2))
        self.norm_weight = nn.Parameter(torch.ones(depth - 2, channels))
        self.norm_bias = nn.Parameter(torch.zeros(depth - 2, channels))
        self.last = spectral_norm(nn.Linear(channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        if not self.rows:
            return self._forward_channels(x)
        # pixels as rows, channels as columns: plain 2-D matrix products and a 2-D batch norm
        # (~30% cheaper forward + backward on a CPU than the (N, C, H * W) layout, same maths)
        y = self.first(x.contiguous(memory_format=torch.channels_last))
        n, c, h, w = y.shape
        y = y.permute(0, 2, 3, 1).reshape(n * h * w, c)
        for i, lin in enumerate(self.mids):
            y = torch.mm(y, lin.weight.T)  # the bias would be removed by the norm
            # batch statistics over every patch of the call (no running averages)
            y = F.batch_norm(y, None, None, self.norm_weight[i], self.norm_bias[i],
                             training=True)
            y = F.relu(y)
        y = torch.addmm(self.last.bias, y, self.last.weight.T)
        return torch.sigmoid(y).reshape(n, h, w, 1).permute(0, 3, 1, 2)

    def _forward_channels(self, x: Tensor) -> Tensor:
        """The same function in the (N, C, H * W) layout (the "legacy" recipe's code path)."""
        y = self.first(x)
        n, c, h, w = y.shape
        y = y.reshape(n, c, h * w)
        for i, lin in enumerate(self.mids):
            y = torch.matmul(lin.weight, y)  # the bias would be removed by the norm
            y = F.batch_norm(y, None, None, self.norm_weight[i], self.norm_bias[i],
                             training=True)
            y = F.relu(y)
        y = torch.matmul(self.last.weight, y) + self.last.bias[:, None]
        return torch.sigmoid(y).reshape(n, 1, h, w)


def compose_x4(kernel_x2: Tensor, size: int = X4_SIZE) -> Tensor:
    """The x4 kernel equal to downscaling x2 twice with ``kernel_x2`` (not normalised).

    With ``blur_downsample``'s convention, ``blur_downsample(blur_downsample(x, k, 2), k, 2)``
    equals ``blur_downsample(x, compose_x4(k), 4)`` away from the borders when ``k`` is centred
    and its composed mass fits in ``size``.

    Shape: (K, K) -> (size, size).
    """
    k = kernel_x2.double()
    ks = k.shape[-1]
    dilated = torch.zeros(2 * ks - 1, 2 * ks - 1, dtype=k.dtype, device=k.device)
    dilated[::2, ::2] = k
    # full 2-D convolution (a sum over a + 2b = c): flip one operand of a cross-correlation
    full = F.conv2d(F.pad(dilated, (ks - 1,) * 4)[None, None], k.flip(0, 1)[None, None])[0, 0]
    # centre of mass moves from c2 to 3 * c2; crop the window whose centre is kernel_centre(size)
    off = round(3 * kernel_centre(ks) - kernel_centre(size))
    if off < 0 or off + size > full.shape[-1]:
        raise ValueError(f"cannot crop a {size}x{size} x4 kernel from a {ks}x{ks} x2 kernel")
    return full[off:off + size, off:off + size].to(kernel_x2.dtype)


def kernel_losses(k: Tensor) -> dict[str, Tensor]:
    """The kernel priors: sum to 1, centred, small near the boundary, sparse.

    Shape: k (K, K) -> scalar tensors.
    """
    size = k.shape[-1]
    c = kernel_centre(size)
    idx = torch.arange(size, device=k.device, dtype=k.dtype)
    total = k.sum()
    com = torch.stack([(k.sum(1) * idx).sum(), (k.sum(0) * idx).sum()]) / (total + 1e-8)
    r = torch.sqrt((idx[:, None] - c) ** 2 + (idx[None, :] - c) ** 2)
    mask = ((r - size / 4) / (size / 4)).clamp(0, 1)  # 0 inside a disc, rising to the rim
    return {
        "sum": (1 - total).abs(),
        "centre": torch.linalg.vector_norm(com - c),
        "boundary": (k * mask).abs().sum(),
        # on the kernel scaled to unit mass, so it cannot be lowered by shrinking the kernel
        "sparse": (k.abs() / (k.abs().sum() + 1e-8) + 1e-8).sqrt().sum(),
        "negative": F.relu(-k).sum(),
    }


def _crop_starts(lum: Tensor, crop: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` top-left corners for ``crop``-sized crops, favouring high-gradient windows."""
    gy = F.pad((lum[1:] - lum[:-1]).abs(), (0, 0, 0, 1))
    gx = F.pad((lum[:, 1:] - lum[:, :-1]).abs(), (0, 1))
    energy = F.avg_pool2d((gx + gy)[None, None], crop, stride=1)[0, 0].double().cpu().numpy()
    p = energy.ravel() / max(energy.sum(), 1e-12)
    p = 0.9 * p + 0.1 / p.size
    flat = rng.choice(p.size, size=n, p=p / p.sum())
    return np.stack(np.unravel_index(flat, energy.shape), axis=1)


def estimate_kernel(
    img: Tensor, *, scale: int = 4, iters: int = DEFAULT_ITERS,
    device: str | torch.device = "cpu", seed: int = 0,
    callback: Callable[[int, int], None] | None = None, recipe: str = "fast",
    batch: int = BATCH, out_crop: int | None = None, w_bicubic: float | None = None,
    w_sparse: float | None = None,
) -> KernelEstimate:
    """Estimate the blur kernel of one image with KernelGAN.

    Args:
        img: (3, H, W) float in [0, 1], both sides at least ``MIN_SIDE``.
        scale: 4 (the composed 25x25 kernel) or 2 (the 13x13 kernel, also in ``kernel``).
        iters: GAN iterations (default ``DEFAULT_ITERS``; the paper uses 3000).
        device: where to train (results come back on the CPU).
        seed: seeds initialisation and crop positions; same seed, same device -> same kernel.
        callback: called as ``callback(iteration, iters)`` after each iteration.
        recipe: "fast" or "legacy" (``RECIPES``; see the module docstring). Same seed and
            iterations, different recipe: a different estimate, as accurate within the
            seed-to-seed spread (``benchmarks/kernel_estimation.py --compare``).
        batch: G crops (and as many real crops for D) per iteration.
        out_crop, w_bicubic, w_sparse: G's output crop side, the bicubic-phase weight and the
            sparsity weight; ``None``: the module's ``OUT_CROP``, ``W_BICUBIC``, ``W_SPARSE``
            (``PRESETS`` names the combinations ``facesr adapt`` offers).
    Returns:
        ``KernelEstimate``; its kernels sum to 1 and are centred (``kernels.py`` convention).
    Shape: img (3, H, W) -> kernel (25, 25) (scale 4) or (13, 13) (scale 2).
    """
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected an RGB image (3, H, W), got {tuple(img.shape)}")
    h, w = img.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image {w}x{h} px is smaller than the {MIN_SIDE} px minimum "
                         "for kernel estimation")
    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale}")
    if iters < 1 or batch < 1:
        raise ValueError(f"iters and batch must be >= 1, got {iters} and {batch}")
    out_crop = OUT_CROP if out_crop is None else out_crop
    w_bicubic = W_BICUBIC if w_bicubic is None else w_bicubic
    w_sparse = W_SPARSE if w_sparse is None else w_sparse
    if out_crop < 8:
        raise ValueError(f"out_crop must be >= 8, got {out_crop}")
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    dev = torch.device(device)
    x = img.detach().to(device=dev, dtype=torch.float32).clamp(0, 1)

    g_crop = min(2 * (out_crop - 1) + X2_SIZE, h, w)
    d_crop = (g_crop - X2_SIZE) // 2 + 1
    rng = np.random.default_rng(seed)
    lum = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])
    g_starts = _crop_starts(lum, g_crop, iters * batch, rng).reshape(iters, batch, 2)
    d_starts = _crop_starts(lum, d_crop, iters * batch, rng).reshape(iters, batch, 2)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = LinearGenerator()
        disc = PatchDiscriminator(rows=recipe == "fast")
    gen, disc = gen.to(dev), disc.to(dev)
    g_params, d_params = list(gen.parameters()), list(disc.parameters())
    shared = recipe == "fast"
    fused = dev.type in ("cpu", "cuda")  # fused Adam: ~3x faster steps on these small nets
    opt_g = torch.optim.Adam(gen.parameters(), lr=LR, betas=BETAS, fused=fused)
    opt_d = torch.optim.Adam(disc.parameters(), lr=LR, betas=BETAS, fused=fused)
    k_bic = bicubic_kernel(2, X2_SIZE).to(dev)

    # bicubic-shaped start: fit G's kernel to the bicubic one directly (cheap, kernel space)
    opt_fit = torch.optim.Adam(gen.parameters(), lr=2e-3, betas=BETAS, fused=fused)
    for _ in range(PREFIT_STEPS):
        opt_fit.zero_grad(set_to_none=True)
        ((gen.kernel() - k_bic) ** 2).sum().mul(100).backward()
        opt_fit.step()

    bic_iters = max(1, int(BICUBIC_FRACTION * iters))
    avg_from = iters - max(1, int(AVERAGE_FRACTION * iters))
    k_sum = torch.zeros(X2_SIZE, X2_SIZE, device=dev, dtype=torch.float64)
    n_avg = 0
    losses: dict[str, Tensor] = {}
    decay_at = {int(f * iters) for f in LR_DECAY_AT}
    for it in range(iters):
        if it in decay_at and it > 0:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] *= LR_DECAY
        g_in = torch.stack([x[:, y:y + g_crop, x0:x0 + g_crop] for y, x0 in g_starts[it]])
        real = torch.stack([x[:, y:y + d_crop, x0:x0 + d_crop] for y, x0 in d_starts[it]])

        k = gen.kernel()
        if shared:
            patches = x2_patches(g_in, X2_SIZE)
            fake = apply_x2_patches(patches, k, g_in.shape)
        else:
            fake = apply_x2(g_in, k)
        priors = kernel_losses(k)
        w_bic = w_bicubic * max(0.0, 1 - it / bic_iters) ** 2
        if shared:
            # one D forward serves both steps: they see the same crops, the same fake (the D
            # step used G's output from before G's update) and the same D weights
            d_real, d_fake = disc(torch.cat([real, fake])).split(len(real))
        else:
            # G step first, with D's weights frozen (their gradients would be discarded)
            disc.requires_grad_(False)
            d_fake = disc(torch.cat([real, fake]))[len(real):]
            disc.requires_grad_(True)
        losses = {"gan": F.mse_loss(d_fake, torch.ones_like(d_fake))}
        losses.update(priors)
        loss_g = (losses["gan"] + W_SUM * priors["sum"] + W_CENTRE * priors["centre"]
                  + W_BOUNDARY * priors["boundary"] + W_NEGATIVE * priors["negative"])
        if w_bic > 0:
            with torch.no_grad():
                bic = (apply_x2_patches(patches, k_bic, g_in.shape) if shared
                       else apply_x2(g_in, k_bic))
            losses["bicubic"] = F.mse_loss(fake, bic)
            loss_g = loss_g + w_bic * losses["bicubic"]
        else:
            loss_g = loss_g + w_sparse * priors["sparse"]
        opt_g.zero_grad(set_to_none=True)
        if shared:
            loss_g.backward(inputs=g_params, retain_graph=True)
        else:
            loss_g.backward()
        opt_g.step()

        # D step: real crops -> 1, G's outputs -> 0 (one call: normalised together)
        if not shared:
            d_real, d_fake = disc(torch.cat([real, fake.detach()])).split(len(real))
        loss_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real))
                        + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        losses["d"] = loss_d
        opt_d.zero_grad(set_to_none=True)
        if shared:
            loss_d.backward(inputs=d_params)
        else:
            loss_d.backward()
        opt_d.step()

        if it >= avg_from:
            k_sum += k.detach().double()
            n_avg += 1
        if log.isEnabledFor(logging.DEBUG) and (it + 1) % max(1, iters // 10) == 0:
            log.debug("iteration %d: kernel sigmas %s, losses %s", it + 1, _sigmas(k.detach()),
                      {name: round(float(v.detach()), 4) for name, v in losses.items()})
        if callback is not None:
            callback(it + 1, iters)

    k2 = normalize_kernel((k_sum / n_avg).float().cpu())
    k_out = normalize_kernel(compose_x4(k2)) if scale == 4 else k2
    final = {name: float(v.detach()) for name, v in losses.items()}
    log.debug("KernelGAN finished after %d iterations: %s", iters, final)
    return KernelEstimate(kernel=k_out, kernel_x2=k2, iters=iters, seed=seed, losses=final)


def _estimate_worker(job: tuple[Tensor, dict]) -> KernelEstimate:
    """One ``estimate_kernel`` call in a worker process, on one torch thread."""
    torch.set_num_threads(1)
    img, kwargs = job
    return estimate_kernel(img, **kwargs)


def estimate_kernels(
    images: Sequence[Tensor], *, jobs: int | None = None, iters: int = DEFAULT_ITERS,
    seed: int | Sequence[int] = 0, scale: int = 4, recipe: str = "fast",
    callback: Callable[[int, KernelEstimate], None] | None = None,
    options: dict | None = None,
) -> list[KernelEstimate]:
    """``estimate_kernel`` on several images, in ``jobs`` parallel processes.

    Each worker is a fresh process ('spawn': safe whatever threads the caller runs) on one
    torch thread, so each estimate is identical to ``estimate_kernel(img, iters=iters,
    seed=seed)`` run sequentially on one thread (``torch.set_num_threads(1)``). Estimation runs
    on the CPU; starting a worker costs a few seconds (importing torch), little next to an
    estimate.

    Args:
        images: (3, H, W) float images in [0, 1] (see ``estimate_kernel``).
        jobs: worker processes; default ``min(len(images), os.cpu_count())``. With 1 the
            estimates run here, one after the other, on this process's torch threads.
        iters, scale, recipe: as for ``estimate_kernel``.
        seed: one seed for every image, or one per image.
        callback: called here as ``callback(index, estimate)`` as each image finishes (in
            completion order, which with several jobs need not be the input order).
        options: more ``estimate_kernel`` keywords (``out_crop``, ``w_bicubic``,
            ``w_sparse``), the same for every image.
    Returns:
        The estimates in input order.
    """
    seeds = [seed] * len(images) if isinstance(seed, int) else list(seed)
    if len(seeds) != len(images):
        raise ValueError(f"got {len(seeds)} seeds for {len(images)} images")
    if jobs is None:
        jobs = min(len(images), os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    work = [(img.detach().cpu(), {**(options or {}), "iters": iters, "seed": s, "scale": scale,
                                  "recipe": recipe})
            for img, s in zip(images, seeds, strict=True)]
    results: list[KernelEstimate | None] = [None] * len(work)
    if jobs == 1 or len(work) <= 1:
        for i, (img, kwargs) in enumerate(work):
            results[i] = estimate_kernel(img, **kwargs)
            if callback is not None:
                callback(i, results[i])
        return results  # type: ignore[return-value]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(work)), mp_context=ctx) as pool:
        futures = {pool.submit(_estimate_worker, job): i for i, job in enumerate(work)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if callback is not None:
                callback(i, results[i])
    return results  # type: ignore[return-value]


def _sigmas(k: Tensor) -> str:
    """'(major, minor, angle)' of a kernel's second moments, for debug logs."""
    major, minor, angle = principal_widths(k)
    return f"({major:.2f}, {minor:.2f}, {angle:.0f} deg)"


def centred_l2(a: Tensor, b: Tensor) -> float:
    """L2 distance between two kernels after normalising both (sum 1, centred)."""
    return math.sqrt(float(((normalize_kernel(a) - normalize_kernel(b)) ** 2).sum()))
