"""The training loop: PSNR pre-training (L1) and GAN fine-tuning (L1 + RaGAN + LPIPS).

Read it top to bottom: :func:`setup` builds a :class:`TrainState` (data, models, optimizers,
resume), :func:`train_step` is one iteration (the generator step, the discriminator step of
the GAN stage, the EMA update), and :class:`Bookkeeping` is the main process's periodic
logging, validation and checkpointing; :func:`train` runs them. Everything a run writes goes to
its run directory (see ``checkpoint.py`` and ``logbook.py``); only the main process writes.

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
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facesr.data.dataset import DegradedFaces
from facesr.data.dedup import near_duplicate_groups, signature_cache
from facesr.data.inputs import MissingPool, hq_files, load_pools
from facesr.degrade.degradation import Pools
from facesr.io import InputError, atomic_write_text
from facesr.losses import load_lpips
from facesr.models import PatchDiscriminator, RRDBNet, load_rrdb
from facesr.train.checkpoint import (
    POINTER,
    Checkpoint,
    clean_run_dir,
    export_generator,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from facesr.train.config import ConfigError, DataConfig, RunConfig, TrainConfig, config_to_yaml
from facesr.train.data import (
    StreamBatches,
    burst_args,
    data_state,
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


def apply_runtime(t: RunConfig, device: torch.device) -> None:
    """The process-wide torch settings of a run: ``train.threads`` intra-op threads (0 leaves
    torch's choice) and, on CUDA, cuDNN autotuning with TF32 matmuls and convolutions."""
    if t.threads:
        torch.set_num_threads(t.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _pools(data: DataConfig) -> Pools:
    """The pool files the degradation draws from (:func:`facesr.data.inputs.load_pools`)."""
    try:
        return load_pools(data.degradation(), data.kernels, data.noise)
    except MissingPool as e:
        raise ConfigError(f"preset {data.preset!r} draws pool {e.what}: set "
                          f"data.{e.what}") from None


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


def _split(data: DataConfig, main: bool) -> tuple[list[Path], list[Path], str]:
    """The held-out split of ``data.hq`` (its first ``data.limit`` files), near-duplicate
    groups kept on one side, and a line that says what was held out."""
    for src in data.hq:
        d = Path(src)
        if d.is_dir() and (d / "manifest.jsonl").is_file() and (d / "lr").is_dir():
            raise InputError(d, "a `facesr pairs` folder: training degrades clean faces on the "
                                "fly, so give it the HQ faces (or list) the pairs were made "
                                "from, with --hq")
    files = hq_files(data.hq)
    if not files:
        raise InputError(", ".join(map(str, data.hq)) or "data.hq", "no HQ images found")
    listed = len(files)
    if data.limit is not None:
        files = files[:data.limit]
    groups: list[list[Path]] = []
    holding_out = data.val_count != 0 if data.val_count is not None else data.val_fraction > 0
    if holding_out and data.val_group_near_duplicates:
        t0 = time.perf_counter()
        groups = near_duplicate_groups(files, cache=signature_cache())
        if main and groups:
            log.warning("the HQ files hold %d groups of near-duplicates (%d files; %.0f s to "
                        "find): each stays on one side of the held-out split; in training "
                        "they weigh more (drop them with facesr data curate)", len(groups),
                        sum(map(len, groups)), time.perf_counter() - t0)
        elif main:
            log.info("no near-duplicates among the %d HQ files (%.0f s to check)", len(files),
                     time.perf_counter() - t0)
    train_files, val_files = split_files(files, data.val_fraction, data.val_seed, groups=groups,
                                         count=data.val_count)
    n = len(train_files) + len(val_files)
    how = (f"data.val_count {data.val_count}" if data.val_count is not None
           else f"data.val_fraction {data.val_fraction:g}")
    note = (f"{n} HQ files" + (f" (the first {n} of {listed}: data.limit)" if n < listed else "")
            + f": {len(val_files)} held out for validation ({how}; listed in heldout.txt), "
            f"{len(train_files)} to train on")
    if groups:
        note += f"; {len(groups)} near-duplicate groups kept on one side"
    return train_files, val_files, note


@dataclass
class GanParts:
    """What only the GAN stage has: the discriminator, its optimizer, and LPIPS."""

    d: nn.Module  # the generator step calls it unwrapped; checkpoints store it
    d_train: nn.Module  # ``d``, or its DDP wrapper: what the discriminator step trains
    opt: torch.optim.Optimizer
    lr: float  # the base learning rate of ``opt`` (optim.lr_d, else optim.lr)
    lpips: nn.Module | None  # None when loss.l_lpips is 0


@dataclass
class TrainState:
    """A run in progress, as :func:`setup` builds it and :func:`train_step` advances it."""

    cfg: TrainConfig
    run_dir: Path
    world: World
    device: torch.device
    amp: torch.dtype | None  # autocast dtype, None: float32
    mem: torch.memory_format
    g: RRDBNet
    g_train: nn.Module  # ``g``, or its DDP wrapper
    ema: RRDBNet | None
    opt_g: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    teacher: RRDBNet | None
    gan: GanParts | None  # None in the PSNR stage
    pools: Pools
    val_files: list[Path]  # held out, never trained on
    split_note: str  # what was held out, in words
    n_items: int  # training items per epoch
    batches: Iterator[dict]
    start: int  # the iteration this call starts at (resumed from)
    items: int  # data-stream items consumed so far

    def autocast(self) -> AbstractContextManager:
        if self.amp is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    @property
    def model(self) -> RRDBNet:
        """The generator that is validated and exported: the EMA when there is one."""
        return self.ema if self.ema is not None else self.g


def _gan_parts(cfg: TrainConfig, ckpt: Checkpoint | None, world: World, device: torch.device,
               mem: torch.memory_format) -> GanParts | None:
    """The GAN stage's discriminator (its checkpointed weights when resuming), its optimizer
    and LPIPS; None in the PSNR stage."""
    if cfg.train.stage != "gan":
        return None
    d = PatchDiscriminator(ndf=cfg.disc.ndf, n_layers=cfg.disc.n_layers, norm=cfg.disc.norm)
    if ckpt is not None and ckpt.d is not None:
        d.load_state_dict(ckpt.d)
    if device.type == "cuda" and world.world_size > 1:
        d = nn.SyncBatchNorm.convert_sync_batchnorm(d)
    d.to(device, memory_format=mem)
    lr = cfg.optim.lr if cfg.optim.lr_d is None else cfg.optim.lr_d
    opt = torch.optim.Adam(d.parameters(), lr=lr, betas=cfg.optim.betas)
    lpips = None
    if cfg.loss.l_lpips > 0:
        lpips = load_lpips(cfg.loss.lpips_backbone, cfg.loss.lpips_linear, device=device)
    return GanParts(d, d, opt, lr, lpips)


def setup(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
          pools: Pools | None = None, world: World = World()) -> TrainState:
    """Data, models and optimizers of a run, restored from the latest checkpoint of
    ``run_dir`` when resuming (arguments: :func:`train`); writes nothing."""
    run_dir, t = Path(run_dir), cfg.train
    device = resolve_device(t.device, world)
    cuda = device.type == "cuda"
    if cuda:
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
    else:
        amp = torch.bfloat16 if t.amp_cpu == "bf16" else None
    mem = torch.channels_last if cuda and t.channels_last else torch.contiguous_format
    if not resume and (run_dir / POINTER).exists():
        raise FileExistsError(f"{run_dir} already holds a run: resume it or choose a new one")
    pools = _pools(cfg.data) if pools is None else pools
    train_files, val_files, split_note = _split(cfg.data, world.main)
    faces = DegradedFaces(train_files, pools, cfg.data.degradation(),
                          hr_patch=cfg.data.hr_patch, factors=cfg.data.factors, seed=t.seed,
                          **burst_args(cfg.data))

    ckpt_path = latest_checkpoint(run_dir) if resume else None
    ckpt = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    torch.manual_seed(t.seed)  # G's initial weights, then D's, then LPIPS's (before loading)
    m = cfg.model
    g = RRDBNet(num_feat=m.num_feat, num_block=m.num_block, num_grow_ch=m.num_grow_ch,
                scale=m.scale)
    gan = _gan_parts(cfg, ckpt, world, device, mem)
    if ckpt is None and t.init_g:
        _load_init(g, t.init_g)
    ema = copy.deepcopy(g).requires_grad_(False) if t.ema_decay > 0 else None
    if ckpt is not None:
        g.load_state_dict(ckpt.g)
        if ema is not None:
            ema.load_state_dict(ckpt.g_ema if ckpt.g_ema is not None else ckpt.g)
    for net in (g, ema):
        if net is not None:
            net.to(device, memory_format=mem)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    teacher = None
    if cfg.loss.teacher is not None:
        teacher = _load_teacher(cfg.loss.teacher, m.scale).to(device, memory_format=mem)
    start, items = 0, 0
    if ckpt is not None:
        start, items = _restore(ckpt, run_dir, val_files, len(faces), opt_g, gan, scaler, cuda)

    g_train = g
    if world.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if cuda else None
        g_train = DDP(g, device_ids=ids)
        if gan is not None:
            gan.d_train = DDP(gan.d, device_ids=ids)
    sampler = StreamBatches(len(faces), t.batch, t.seed, start=items, rank=world.rank,
                            world_size=world.world_size)
    batches = iter(make_loader(faces, sampler, workers=t.workers, pin_memory=cuda))
    return TrainState(cfg, run_dir, world, device, amp, mem, g, g_train, ema, opt_g, scaler,
                      teacher, gan, pools, val_files, split_note, len(faces), batches, start,
                      items)


def _restore(ckpt: Checkpoint, run_dir: Path, val_files: list[Path], n_items: int,
             opt_g: torch.optim.Optimizer, gan: GanParts | None,
             scaler: torch.amp.GradScaler, cuda: bool) -> tuple[int, int]:
    """Check that the data can continue; load the optimizer, scaler and RNG states.

    Returns:
        (iteration, data-stream items consumed) of the checkpoint.
    """
    st = ckpt.state
    held = run_dir / "heldout.txt"  # resuming on other held-out files would train on some
    if held.is_file() and held.read_text(encoding="utf-8").splitlines() != [
            str(f) for f in val_files]:
        raise ConfigError(f"{held}: the held-out files are not those the run began with "
                          "(data.hq or the split changed; a run begun before near-duplicate "
                          "grouping resumes with --set data.val_group_near_duplicates=false)")
    if st["data"]["num_items"] != n_items:
        raise ConfigError(f"{ckpt.path}: the training set had {st['data']['num_items']} "
                          f"items, now {n_items}; the data stream cannot continue")
    opt_g.load_state_dict(st["opt_g"])
    if gan is not None and st.get("opt_d") is not None and st.get("stage") == "gan":
        gan.opt.load_state_dict(st["opt_d"])
    if st.get("scaler"):
        scaler.load_state_dict(st["scaler"])
    torch.set_rng_state(st["rng"]["torch"])
    if cuda and st["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(st["rng"]["cuda"])
    log.info("resuming %s at iteration %d", ckpt.path, ckpt.iteration)
    return ckpt.iteration, int(st["data"]["items"])


def train_step(st: TrainState, it: int) -> dict[str, Tensor]:
    """Iteration ``it`` (0-based): the generator step, the discriminator step (GAN stage) and
    the EMA update. In the GAN stage's first ``train.d_warmup`` iterations only the
    discriminator learns (the generator runs without gradients, the EMA stays).

    Returns:
        The iteration's scalars (0-dim tensors, this process's; not synchronised).
    """
    cfg, w, o = st.cfg, st.cfg.loss, st.cfg.optim
    lr_g = lr_at(it, o.lr, o.milestones, o.gamma)
    for group in st.opt_g.param_groups:
        group["lr"] = lr_g
    batch = next(st.batches)
    x = batch["lr"].to(st.device, non_blocking=True).contiguous(memory_format=st.mem)
    hr = batch["hr"].to(st.device, non_blocking=True).contiguous(memory_format=st.mem)
    gan, ws = st.gan, st.world.world_size
    warmup = gan is not None and it < cfg.train.d_warmup  # D learns on a frozen G first

    if warmup:
        with torch.no_grad(), st.autocast():
            sr = st.g(x)
        stats: dict[str, Tensor] = {}
    else:  # generator step (D frozen and called unwrapped: it is not updated here)
        if gan is not None:
            gan.d.requires_grad_(False)
        with st.autocast():
            teacher_sr = None
            if st.teacher is not None:
                with torch.no_grad():
                    teacher_sr = st.teacher(x)
            sr = st.g_train(x)
            loss_g, stats = generator_loss(
                sr, hr, d=gan.d if gan else None, lpips=gan.lpips if gan else None,
                l_pix=w.l_pix, l_adv=w.l_adv, l_lpips=w.l_lpips, world_size=ws,
                teacher_sr=teacher_sr, l_teacher=w.l_teacher, l_color=w.l_color,
                color_pool=w.color_pool)
        norm = _optimizer_step(st.opt_g, loss_g, st.g, st.scaler, o.grad_clip)
        if norm is not None:
            stats["train/grad_norm_g"] = norm

    # discriminator step (relativistic average, one joint loss over real and fake)
    if gan is not None:
        for group in gan.opt.param_groups:
            group["lr"] = lr_at(it, gan.lr, o.milestones, o.gamma)
        gan.d.requires_grad_(True)
        with st.autocast():
            loss_d, d_stats = discriminator_loss(gan.d_train, sr.detach(), hr, world_size=ws)
        norm = _optimizer_step(gan.opt, loss_d, gan.d, st.scaler, o.grad_clip)
        if norm is not None:
            d_stats["train/grad_norm_d"] = norm
        stats |= d_stats
    st.scaler.update()
    if st.ema is not None and not warmup:
        ema_update(st.ema, st.g, ema_decay_at(it, cfg.train.ema_decay))
    st.items += cfg.train.batch
    return stats


class Bookkeeping:
    """The main process's side of a run: its folder, logs, validation and checkpoints.

    Opening it prepares the run folder (leftovers of an interrupted run removed, config.yaml
    and heldout.txt written) and builds the fixed validation set.
    """

    def __init__(self, st: TrainState) -> None:
        cfg, run_dir = st.cfg, st.run_dir
        self.config_yaml = config_to_yaml(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_run_dir(run_dir, st.start)
        atomic_write_text(run_dir / "config.yaml", self.config_yaml)
        # the held-out files, never trained on: evaluate a model of this run on these
        atomic_write_text(run_dir / "heldout.txt", "".join(f"{f}\n" for f in st.val_files))
        self.runlog = RunLog(run_dir, start=st.start, tensorboard=cfg.train.tensorboard)
        self.val: tuple[Tensor, Tensor] | None = None
        self.val_bicubic = math.nan
        if st.val_files:
            self.val = validation_set(st.val_files, st.pools, cfg.data.degradation(),
                                      hr_patch=cfg.data.hr_patch, factors=cfg.data.factors,
                                      seed=cfg.data.val_seed, count=cfg.data.val_max,
                                      **burst_args(cfg.data))
            lr_v, hr_v = self.val  # fixed: its bicubic baseline is computed once
            up = F.interpolate(lr_v, size=hr_v.shape[-2:], mode="bicubic", align_corners=False)
            self.val_bicubic = mean_finite(psnr_y(up.clamp(0, 1), hr_v, cfg.model.scale))
        self.sums: dict[str, Tensor] = {}
        self.n_sum, self.t_last, self.it_last = 0, time.perf_counter(), st.start
        self.last: dict[str, float] = {}  # the last logged training scalars
        self.last_val: dict[str, float] = {}  # the last validation
        self.saved_at = -1  # the iteration of the last checkpoint this process wrote
        self.collapse: str | None = None  # set when the GAN stage's validation collapsed

    def after_step(self, st: TrainState, done: int, stats: dict[str, Tensor]
                   ) -> dict[str, float] | None:
        """Log, validate and checkpoint after iteration ``done`` (1-based) when due.

        Under DDP, L1 and LPIPS are the main process's share of the batch, the GAN terms the
        whole batch's.

        Returns:
            The scalars logged at this iteration, or None.
        """
        t = st.cfg.train
        final = done == t.iterations
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float()
        self.n_sum += 1
        logged = None
        if done % t.log_every == 0 or final:
            now = time.perf_counter()
            logged = {k: float(v) / self.n_sum for k, v in self.sums.items()}
            logged |= {"train/lr": st.opt_g.param_groups[0]["lr"],
                       "train/it_per_s": (done - self.it_last) / (now - self.t_last)}
            self.sums, self.n_sum, self.t_last, self.it_last = {}, 0, now, done
            self.runlog.scalars(done, logged)
            self.last = logged
        if self.val is not None and (done % t.val_every == 0 or final):
            self.last_val = self.validate(st, done)
            self.runlog.scalars(done, self.last_val)
            logged = (logged or {}) | self.last_val
            self.collapse = self._collapse(st, done)
        if done % t.checkpoint_every == 0 or final:
            self.checkpoint(st, done)
        return logged

    def _collapse(self, st: TrainState, done: int) -> str | None:
        """Why the GAN stage should stop after this validation, or None."""
        t, v = st.cfg.train, self.last_val
        if t.stage != "gan" or t.collapse_db is None:
            return None
        psnr, bic = v["val/psnr_y"], v["val/psnr_y_bicubic"]
        if not psnr < bic - t.collapse_db:  # NaN PSNR (a broken model) stops too
            return None
        return (f"the GAN stage has collapsed: validation PSNR-Y {psnr:.2f} dB at iteration "
                f"{done} is {bic - psnr:.1f} dB below bicubic's {bic:.2f} (train.collapse_db "
                f"{t.collapse_db:g}); lower loss.l_adv or loss.l_lpips, or raise loss.l_pix "
                f"(configs/cpu-small.yaml's weights are measured), then start again from the "
                f"PSNR model; checkpoints so far are in {st.run_dir / 'ckpt'}")

    @torch.no_grad()
    def validate(self, st: TrainState, done: int) -> dict[str, float]:
        """PSNR-Y and SSIM-Y of the validated generator on the fixed validation set."""
        model, (lr_v, hr_v), b = st.model, self.val, st.cfg.train.batch
        srs = []
        for i in range(0, len(lr_v), b):
            x = lr_v[i:i + b].to(st.device).contiguous(memory_format=st.mem)
            with st.autocast():
                srs.append(model(x).float().clamp(0, 1).cpu())
        sr = torch.cat(srs)
        s = st.cfg.model.scale
        out = {"val/psnr_y": mean_finite(psnr_y(sr, hr_v, s)),
               "val/ssim_y": mean_finite(ssim_y(sr, hr_v, s)),
               "val/psnr_y_bicubic": self.val_bicubic}
        self.runlog.image(done, "val/lr_sr_hr", _grid(lr_v[:4], sr[:4], hr_v[:4]))
        return out

    def checkpoint(self, st: TrainState, done: int) -> None:
        """Checkpoint ``done``: weights, optimizer/scaler/RNG states, data-stream position."""
        t, gan, cuda = st.cfg.train, st.gan, st.device.type == "cuda"
        state = {"stage": t.stage, "world_size": st.world.world_size,
                 "opt_g": st.opt_g.state_dict(),
                 "opt_d": gan.opt.state_dict() if gan is not None else None,
                 "scaler": st.scaler.state_dict() if st.scaler.is_enabled() else None,
                 "rng": {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state_all() if cuda else []},
                 "data": data_state(st.items, st.n_items, t.seed)}
        dc = st.cfg.disc
        d_arch = {"in_ch": 3, "ndf": dc.ndf, "n_layers": dc.n_layers, "norm": dc.norm}
        save_checkpoint(st.run_dir, done, g=st.g, g_ema=st.ema,
                        d=gan.d if gan is not None else None, d_arch=d_arch, state=state,
                        config_yaml=self.config_yaml, stage=t.stage, keep=t.keep_checkpoints)
        self.saved_at = done

    def finish(self, st: TrainState, final: int) -> None:
        """Close the logs; export the generator (after iteration ``final``) as
        ``RUN/model.safetensors``."""
        self.runlog.close()
        t = st.cfg.train
        export_generator(st.run_dir / "model.safetensors", st.model,
                         config_yaml=self.config_yaml, stage=t.stage, iteration=final,
                         source=f"facesr train {t.stage}, iteration {final}, "
                                f"{'EMA' if st.ema is not None else 'raw'} G")


class Collapsed(RuntimeError):
    """The GAN stage's validation fell ``train.collapse_db`` below bicubic; the run stopped
    there (its checkpoints are kept)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped :func:`train` after ``iteration``, checkpointed there."""

    def __init__(self, signum: int, iteration: int, run_dir: Path) -> None:
        self.signum, self.iteration, self.run_dir = signum, iteration, run_dir
        name = signal.Signals(signum).name
        super().__init__(f"{name}: stopped after iteration {iteration}, checkpointed in "
                         f"{run_dir}")

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum


class _StopSignals:
    """While active, SIGINT and SIGTERM only record that the run should stop (the first
    signal's number); the loop stops at the end of the iteration. Further signals are ignored
    so that the checkpoint being written completes. Installed only from the main thread;
    the previous handlers come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._before: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("%s: stopping after this iteration (checkpoint first)",
                        signal.Signals(signum).name)

    def __enter__(self) -> _StopSignals:
        if self.active:
            for s in self.SIGNALS:
                self._before[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._before.items():
            signal.signal(s, h)
        self._before.clear()


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
          pools: Pools | None = None, world: World = World(),
          on_step: StepCallback | None = None,
          on_start: Callable[[str], None] | None = None,
          stop_when: Callable[[int], bool] | None = None) -> dict:
    """Train (or resume) one stage; writes checkpoints, metrics and images under ``run_dir``.

    Applies the run's torch settings first (:func:`apply_runtime`: ``train.threads``, TF32).

    In a single process called from the main thread, SIGINT and SIGTERM during the
    iterations stop the run at the end of the current iteration: it is checkpointed and
    :class:`Interrupted` is raised (the previous signal handlers are restored). Under DDP the
    signals act as before (KeyboardInterrupt or termination).

    Args:
        resume: continue from ``run_dir``'s latest complete checkpoint (from iteration 0 when
            it has none); False needs a run directory without a checkpoint pointer.
        pools: degradation pools to use instead of loading ``cfg.data.kernels``/``noise``.
        world: DDP placement; the process group must already be initialised when
            ``world.world_size > 1``.
        on_step: called on the main process after every iteration with (iteration done,
            total, the scalars logged at this iteration or None); raising stops the run.
        on_start: called on the main process once the data is split, with a line that says
            how many HQ files were held out for validation and trained on.
        stop_when: called in a single process after every iteration with the iterations
            done; when it returns True the run ends there as if ``train.iterations`` had been
            reached (checkpoint, ``model.safetensors``): a budget in time (``facesr adapt
            --minutes``). Resuming continues from that checkpoint.

    Returns:
        ``{"iteration", "run_dir", "last": last logged scalars, "val": last validation}``.

    Raises:
        Interrupted: a SIGINT or SIGTERM stopped the run (after checkpointing).
        Collapsed: the GAN stage's validation PSNR-Y fell ``train.collapse_db`` below bicubic.
    """
    apply_runtime(cfg.train, resolve_device(cfg.train.device, world))
    st = setup(cfg, run_dir, resume=resume, pools=pools, world=world)
    if world.main and on_start is not None:
        on_start(st.split_note)
    book = Bookkeeping(st) if world.main else None
    t = cfg.train
    done = max(st.start, t.iterations)
    with _StopSignals(world.world_size == 1) as stop:
        for it in range(st.start, t.iterations):
            if stop_when is not None and world.world_size == 1 and it > st.start \
                    and stop_when(it):
                done = it
                if book is not None and book.saved_at != it:
                    book.checkpoint(st, it)
                break
            stats = train_step(st, it)
            if book is not None:
                logged = book.after_step(st, it + 1, stats)
                if on_step is not None:
                    on_step(it + 1, t.iterations, logged)
            collapse = book.collapse if book is not None else None
            if world.world_size > 1 and t.stage == "gan" and (it + 1) % t.val_every == 0:
                import torch.distributed as dist

                flag = torch.tensor([collapse is not None], dtype=torch.int32, device=st.device)
                dist.broadcast(flag, 0)  # every process stops together
                if flag.item() and collapse is None:
                    collapse = "the GAN stage has collapsed (see the main process)"
            if collapse is not None:
                if book is not None:
                    book.runlog.close()
                raise Collapsed(collapse)
            if stop.signum is not None and book is not None:
                if book.saved_at != it + 1:
                    book.checkpoint(st, it + 1)
                book.runlog.close()
                raise Interrupted(stop.signum, it + 1, st.run_dir)
    if book is not None:
        book.finish(st, done)
    return {"iteration": done, "run_dir": str(st.run_dir),
            "last": book.last if book else {}, "val": book.last_val if book else {}}
