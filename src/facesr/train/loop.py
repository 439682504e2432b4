"""The training loop: PSNR pre-training (L1) and GAN fine-tuning (L1 + RaGAN + LPIPS).

Read it top to bottom: setup (data, models, optimizers, resume), then one loop whose body is
the generator step, the discriminator step (GAN stage), the EMA update, and the periodic
logging, validation and checkpointing. Everything a run writes goes to its run directory
(see ``checkpoint.py`` and ``logbook.py``); only the main process writes.

Determinism: on CPU, a run resumed from a checkpoint continues bit-for-bit (weights, Adam
state, data stream position; the LR is a pure function of the iteration), given the same
number of threads (``train.threads``). Under DDP each process takes its share of every
global batch (``data.py``), so W processes train on the same batches as one, and the losses
make the gradients of the whole batch (``steps.py``); with a BatchNorm discriminator the
batch statistics are per process (SyncBatchNorm on CUDA).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facesr.data.dataset import DegradedFaces
from facesr.data.dedup import near_duplicate_groups
from facesr.degrade.degradation import DegradeConfig, Pools
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.io import atomic_write_text
from facesr.losses import load_lpips
from facesr.models import PatchDiscriminator, RRDBNet, load_rrdb
from facesr.train.checkpoint import (
    POINTER,
    clean_run_dir,
    export_generator,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from facesr.train.config import ConfigError, DataConfig, TrainConfig, config_to_yaml
from facesr.train.data import (
    StreamBatches,
    data_state,
    hq_files,
    make_loader,
    split_files,
    validation_set,
)
from facesr.train.logbook import RunLog
from facesr.train.quality import mean_finite, psnr_y, ssim_y
from facesr.train.steps import (
    discriminator_loss,
    ema_decay_at,
    ema_update,
    generator_loss,
    lr_at,
)

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int, dict[str, float] | None], None]


@dataclass(frozen=True)
class World:
    """This process's place in a DDP job (torchrun's RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The World torchrun describes in the environment (one process when unset)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def resolve_device(name: str, world: World) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` -> this process's GPU under DDP."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and world.world_size > 1:
        name = f"cuda:{world.local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but no CUDA device is available")
    return device


def load_pools(data: DataConfig, degrade: DegradeConfig) -> Pools:
    """Load the pool files the degradation draws from."""
    if degrade.kernel == "pool" and data.kernels is None:
        raise ConfigError(f"preset {data.preset!r} draws pool kernels: set data.kernels")
    if degrade.noise == "pool" and data.noise is None:
        raise ConfigError(f"preset {data.preset!r} draws pool noise: set data.noise")
    kernels = KernelPool.load(data.kernels) if degrade.kernel == "pool" else None
    noise = NoisePool.load(data.noise) if degrade.noise == "pool" else None
    if kernels is not None and kernels.scale != degrade.scale:
        raise ConfigError(f"{data.kernels}: kernel pool is for x{kernels.scale}, the "
                          f"degradation is x{degrade.scale}")
    return Pools(kernels, noise)


def _grid(lr: Tensor, sr: Tensor, hr: Tensor) -> Tensor:
    """Rows of [bicubic LR | SR | HR]. Shape: (N, 3, ...) -> (3, N*H, 3*W)."""
    up = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False)
    rows = [torch.cat([u, s, h], dim=-1) for u, s, h in zip(up, sr, hr, strict=True)]
    return torch.cat(rows, dim=-2).clamp(0, 1)


def _load_init(g: RRDBNet, path: str) -> None:
    src = load_rrdb(path)
    if src.arch() != g.arch():
        raise ConfigError(f"train.init_g {path}: architecture {src.arch()} does not match the "
                          f"model section {g.arch()}")
    g.load_state_dict(src.state_dict())


def _load_teacher(path: str, scale: int) -> RRDBNet:
    """The frozen distillation teacher (any RRDBNet weights file of the same scale)."""
    try:
        teacher = load_rrdb(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"loss.teacher {path}: {e}") from None
    if teacher.arch()["scale"] != scale:
        raise ConfigError(f"loss.teacher {path} is x{teacher.arch()['scale']}, the model x{scale}")
    return teacher.eval().requires_grad_(False)


def _optimizer_step(opt: torch.optim.Optimizer, loss: Tensor, net: nn.Module,
                    scaler: torch.amp.GradScaler, clip: float | None) -> Tensor | None:
    """Backward ``loss`` and step ``opt`` through the scaler, clipping ``net``'s gradients to
    global norm ``clip``; returns the norm before clipping (None when not clipping)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    norm = None
    if clip is not None:
        scaler.unscale_(opt)
        norm = nn.utils.clip_grad_norm_(net.parameters(), clip)
    scaler.step(opt)
    return norm


def _split(data: DataConfig, main: bool) -> tuple[list[Path], list[Path]]:
    """The held-out split of ``data.hq``, near-duplicate groups kept on one side."""
    files = hq_files(data.hq)
    groups: list[list[Path]] = []
    if data.val_fraction > 0 and data.val_group_near_duplicates:
        t0 = time.perf_counter()
        groups = near_duplicate_groups(files)
        if main and groups:
            log.warning("the HQ files hold %d groups of near-duplicates (%d files; %.0f s to "
                        "find): each stays on one side of the held-out split; in training "
                        "they weigh more (drop them with facesr data curate)", len(groups),
                        sum(map(len, groups)), time.perf_counter() - t0)
        elif main:
            log.info("no near-duplicates among the %d HQ files (%.0f s to check)", len(files),
                     time.perf_counter() - t0)
    return split_files(files, data.val_fraction, data.val_seed, groups=groups)


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
          pools: Pools | None = None, world: World = World(),
          on_step: StepCallback | None = None) -> dict:
    """Train (or resume) one stage; writes checkpoints, metrics and images under ``run_dir``.

    Args:
        resume: continue from ``run_dir``'s latest complete checkpoint (from iteration 0 when
            it has none); False needs a run directory without a checkpoint pointer.
        pools: degradation pools to use instead of loading ``cfg.data.kernels``/``noise``.
        world: DDP placement; the process group must already be initialised when
            ``world.world_size > 1``.
        on_step: called on the main process after every iteration with (iteration done,
            total, the scalars logged at this iteration or None); raising stops the run.

    Returns:
        ``{"iteration", "run_dir", "last": last logged scalars, "val": last validation}``.
    """
    run_dir, t = Path(run_dir), cfg.train
    gan = t.stage == "gan"
    device = resolve_device(t.device, world)
    cuda = device.type == "cuda"
    if cuda:
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
    else:
        amp = torch.bfloat16 if t.amp_cpu == "bf16" else None
    mem = torch.channels_last if cuda and t.channels_last else torch.contiguous_format
    config_yaml = config_to_yaml(cfg)
    if not resume and (run_dir / POINTER).exists():
        raise FileExistsError(f"{run_dir} already holds a run: resume it or choose a new one")

    def autocast():
        return torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()

    # ---------------------------------------------------------------- data
    degrade = cfg.data.degradation()
    pools = load_pools(cfg.data, degrade) if pools is None else pools
    train_files, val_files = _split(cfg.data, world.main)
    faces = DegradedFaces(train_files, pools, degrade, hr_patch=cfg.data.hr_patch,
                          factors=cfg.data.factors, seed=t.seed)

    # ---------------------------------------------------------------- models, optimizers
    torch.manual_seed(t.seed)
    m = cfg.model
    g = RRDBNet(num_feat=m.num_feat, num_block=m.num_block, num_grow_ch=m.num_grow_ch,
                scale=m.scale)
    d = PatchDiscriminator(ndf=cfg.disc.ndf, n_layers=cfg.disc.n_layers,
                           norm=cfg.disc.norm) if gan else None
    d_arch = {"in_ch": 3, "ndf": cfg.disc.ndf, "n_layers": cfg.disc.n_layers,
              "norm": cfg.disc.norm}
    ckpt_path = latest_checkpoint(run_dir) if resume else None
    ckpt = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    if ckpt is None and t.init_g:
        _load_init(g, t.init_g)
    ema = copy.deepcopy(g).requires_grad_(False) if t.ema_decay > 0 else None
    if ckpt is not None:
        g.load_state_dict(ckpt.g)
        if ema is not None:
            ema.load_state_dict(ckpt.g_ema if ckpt.g_ema is not None else ckpt.g)
        if d is not None and ckpt.d is not None:
            d.load_state_dict(ckpt.d)
    if d is not None and cuda and world.world_size > 1:
        d = nn.SyncBatchNorm.convert_sync_batchnorm(d)
    for net in (g, ema, d):
        if net is not None:
            net.to(device, memory_format=mem)
    betas = cfg.optim.betas
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.optim.lr, betas=betas)
    lr_d = cfg.optim.lr if cfg.optim.lr_d is None else cfg.optim.lr_d
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=betas) if d is not None else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    teacher = None
    if cfg.loss.teacher is not None:
        teacher = _load_teacher(cfg.loss.teacher, cfg.model.scale).to(device, memory_format=mem)
    lpips = None
    if gan and cfg.loss.l_lpips > 0:
        lpips = load_lpips(cfg.loss.lpips_backbone, cfg.loss.lpips_linear, device=device)

    start, items = 0, 0
    if ckpt is not None:
        st = ckpt.state
        held = run_dir / "heldout.txt"  # resuming on other held-out files would train on some
        if held.is_file() and held.read_text(encoding="utf-8").splitlines() != [
                str(f) for f in val_files]:
            raise ConfigError(f"{held}: the held-out files are not those the run began with "
                              "(data.hq or the split changed; a run begun before near-duplicate "
                              "grouping resumes with --set data.val_group_near_duplicates=false)")
        if st["data"]["num_items"] != len(faces):
            raise ConfigError(f"{ckpt.path}: the training set had {st['data']['num_items']} "
                              f"items, now {len(faces)}; the data stream cannot continue")
        opt_g.load_state_dict(st["opt_g"])
        if opt_d is not None and st.get("opt_d") is not None and st.get("stage") == "gan":
            opt_d.load_state_dict(st["opt_d"])
        if st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng"]["torch"])
        if cuda and st["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(st["rng"]["cuda"])
        start, items = ckpt.iteration, int(st["data"]["items"])
        log.info("resuming %s at iteration %d", ckpt.path, start)

    g_train, d_train = g, d
    if world.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if cuda else None
        g_train = DDP(g, device_ids=ids)
        d_train = DDP(d, device_ids=ids) if d is not None else None

    runlog, val, val_bicubic = None, None, math.nan
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_run_dir(run_dir, start)
        atomic_write_text(run_dir / "config.yaml", config_yaml)
        # the held-out files, never trained on: evaluate a model of this run on these
        atomic_write_text(run_dir / "heldout.txt", "".join(f"{f}\n" for f in val_files))
        runlog = RunLog(run_dir, start=start, tensorboard=t.tensorboard)
        if val_files:
            val = validation_set(val_files, pools, degrade, hr_patch=cfg.data.hr_patch,
                                 factors=cfg.data.factors, seed=cfg.data.val_seed,
                                 count=cfg.data.val_max)
            lr_v, hr_v = val  # fixed: its bicubic baseline is computed once
            up = F.interpolate(lr_v, size=hr_v.shape[-2:], mode="bicubic", align_corners=False)
            val_bicubic = mean_finite(psnr_y(up.clamp(0, 1), hr_v, cfg.model.scale))
    sampler = StreamBatches(len(faces), t.batch, t.seed, start=items, rank=world.rank,
                            world_size=world.world_size)
    batches = iter(make_loader(faces, sampler, workers=t.workers, pin_memory=cuda))

    def checkpoint(done: int) -> None:
        state = {"stage": t.stage, "world_size": world.world_size,
                 "opt_g": opt_g.state_dict(),
                 "opt_d": opt_d.state_dict() if opt_d is not None else None,
                 "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                 "rng": {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state_all() if cuda else []},
                 "data": data_state(items, len(faces), t.seed)}
        save_checkpoint(run_dir, done, g=g, g_ema=ema, d=d, g_arch=g.arch(), d_arch=d_arch,
                        state=state, config_yaml=config_yaml, stage=t.stage,
                        keep=t.keep_checkpoints)

    @torch.no_grad()
    def validate(done: int) -> dict[str, float]:
        model = ema if ema is not None else g
        lr_v, hr_v = val
        srs = []
        for i in range(0, len(lr_v), t.batch):
            x = lr_v[i:i + t.batch].to(device).contiguous(memory_format=mem)
            with autocast():
                srs.append(model(x).float().clamp(0, 1).cpu())
        sr = torch.cat(srs)
        s = cfg.model.scale
        out = {"val/psnr_y": mean_finite(psnr_y(sr, hr_v, s)),
               "val/ssim_y": mean_finite(ssim_y(sr, hr_v, s)),
               "val/psnr_y_bicubic": val_bicubic}
        runlog.image(done, "val/lr_sr_hr", _grid(lr_v[:4], sr[:4], hr_v[:4]))
        return out

    # ---------------------------------------------------------------- the loop
    w, ws = cfg.loss, world.world_size
    sums: dict[str, Tensor] = {}
    n_sum, t_last, it_last = 0, time.perf_counter(), start
    last: dict[str, float] = {}
    last_val: dict[str, float] = {}
    for it in range(start, t.iterations):
        lr_g = lr_at(it, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma)
        for group in opt_g.param_groups:
            group["lr"] = lr_g
        batch = next(batches)
        x = batch["lr"].to(device, non_blocking=True).contiguous(memory_format=mem)
        hr = batch["hr"].to(device, non_blocking=True).contiguous(memory_format=mem)

        # generator step (D frozen and called unwrapped: it is not updated here)
        if d is not None:
            d.requires_grad_(False)
        with autocast():
            teacher_sr = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_sr = teacher(x)
            sr = g_train(x)
            loss_g, stats = generator_loss(sr, hr, d=d, lpips=lpips, l_pix=w.l_pix,
                                           l_adv=w.l_adv, l_lpips=w.l_lpips, world_size=ws,
                                           teacher_sr=teacher_sr, l_teacher=w.l_teacher,
                                           l_color=w.l_color, color_pool=w.color_pool)
        norm = _optimizer_step(opt_g, loss_g, g, scaler, cfg.optim.grad_clip)
        if norm is not None:
            stats["train/grad_norm_g"] = norm

        # discriminator step (relativistic average, one joint loss over real and fake)
        if gan:
            for group in opt_d.param_groups:
                group["lr"] = lr_at(it, lr_d, cfg.optim.milestones, cfg.optim.gamma)
            d.requires_grad_(True)
            with autocast():
                loss_d, d_stats = discriminator_loss(d_train, sr.detach(), hr, world_size=ws)
            norm = _optimizer_step(opt_d, loss_d, d, scaler, cfg.optim.grad_clip)
            if norm is not None:
                d_stats["train/grad_norm_d"] = norm
            stats |= d_stats
        scaler.update()
        if ema is not None:
            ema_update(ema, g, ema_decay_at(it, t.ema_decay))
        items += t.batch
        done = it + 1

        # bookkeeping: log, validate, checkpoint (main process only; under DDP, L1 and LPIPS
        # are the main process's share of the batch, the GAN terms the whole batch's)
        if not world.main:
            continue
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v.detach().float()
        n_sum += 1
        logged = None
        if done % t.log_every == 0 or done == t.iterations:
            now = time.perf_counter()
            logged = {k: float(v) / n_sum for k, v in sums.items()}
            logged |= {"train/lr": lr_g, "train/it_per_s": (done - it_last) / (now - t_last)}
            sums, n_sum, t_last, it_last = {}, 0, now, done
            runlog.scalars(done, logged)
            last = logged
        if val is not None and (done % t.val_every == 0 or done == t.iterations):
            last_val = validate(done)
            runlog.scalars(done, last_val)
            logged = (logged or {}) | last_val
        if done % t.checkpoint_every == 0 or done == t.iterations:
            checkpoint(done)
        if on_step is not None:
            on_step(done, t.iterations, logged)

    if world.main:
        runlog.close()
        final = max(start, t.iterations)
        export_generator(run_dir / "model.safetensors", ema if ema is not None else g,
                         g_arch=g.arch(), config_yaml=config_yaml, stage=t.stage,
                         iteration=final, source=f"facesr train {t.stage}, iteration {final}, "
                                                 f"{'EMA' if ema is not None else 'raw'} G")
    return {"iteration": max(start, t.iterations), "run_dir": str(run_dir), "last": last,
            "val": last_val}
