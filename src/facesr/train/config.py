"""Training configuration: frozen dataclasses, loaded strictly from YAML.

A config file has up to six sections (``data``, ``model``, ``disc``, ``loss``, ``optim``,
``train``); a missing key takes the default below (the paper's settings), an unknown key is an
error that names it. ``--set section.key=value`` overrides are parsed as YAML and applied before
validation, so they get the same checks. Relative paths in a config file are resolved against
the file's folder, those of ``--set`` overrides against the current directory; the resolved
config, written next to every run and into every checkpoint, holds absolute paths, so a run
resumes from anywhere.

Example:
    >>> cfg = load_config(None, ["train.batch=4", "model.num_block=1"])
    >>> cfg.train.batch, cfg.model.num_block, cfg.optim.lr
    (4, 1, 0.0001)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from facesr.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    resolve_paths,
    yaml_error_line,
)
from facesr.degrade.degradation import PRESETS, DegradeConfig
from facesr.degrade.pairs import HR_FACTORS
from facesr.losses.lpips import MIN_SIDE as LPIPS_MIN_SIDE
from facesr.models.patchgan import patch_map_size

PATH = {"path": True}  # field metadata: resolved against the base directory when loaded


@dataclass(frozen=True)
class DataConfig:
    """Where training pairs come from and how they are degraded."""

    hq: tuple[str, ...] = field(default=(), metadata=PATH)  # images, folders, .txt lists
    limit: int | None = None  # use only the first N HQ files (in listing order); None: all
    kernels: str | None = field(default=None, metadata=PATH)  # kernel pool (.safetensors)
    noise: str | None = field(default=None, metadata=PATH)  # noise pool (.safetensors)
    preset: str = "paper"  # a degradation preset (facesr.degrade.degradation.PRESETS)
    degrade: dict = field(default_factory=dict)  # overrides of DegradeConfig fields
    hr_patch: int = 128
    factors: tuple[float, ...] = HR_FACTORS  # target augmentation: HR also at these sizes
    val_fraction: float = 0.02  # share of the HQ files held out (whole files, seeded)
    val_count: int | None = None  # hold out this many files instead of val_fraction's share
    val_seed: int = 0  # picks the held-out files and their (fixed) degradations
    val_max: int = 64  # at most this many validation crops
    # keep near-duplicate files (facesr.data.dedup) on one side of the held-out split;
    # false gives the per-file split of runs made before it existed
    val_group_near_duplicates: bool = True
    # train on fused bursts (facesr.data.dataset.DegradedFaces, issue 17): frames per burst,
    # an inclusive range drawn uniformly; null: single degraded frames
    burst: tuple[int, int] | None = None
    burst_shift: float = 4.0  # frames but the first shifted by up to this many HR px in x, y
    burst_rotate: float = 2.0  # ... and turned by up to this many degrees

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"data.preset: unknown preset {self.preset!r}; "
                              f"one of {', '.join(PRESETS)}")
        self.degradation()  # strict: raises ConfigError naming data.degrade.<key>
        _positive("data.hr_patch", self.hr_patch)
        _positive("data.val_max", self.val_max)
        if self.limit is not None:
            _positive("data.limit", self.limit)
        if self.val_count is not None and self.val_count < 0:
            raise ConfigError(f"data.val_count must be >= 0 or null, got {self.val_count}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.burst is not None and not (len(self.burst) == 2
                                           and 1 <= self.burst[0] <= self.burst[1]):
            raise ConfigError(f"data.burst must be [low, high] frames with 1 <= low <= high, "
                              f"got {list(self.burst)}")
        if self.burst_shift < 0 or self.burst_rotate < 0:
            raise ConfigError("data.burst_shift and data.burst_rotate must be >= 0")
        if not self.factors or any(not 0.0 < f <= 1.0 for f in self.factors):
            raise ConfigError(f"data.factors must be numbers in (0, 1], got {self.factors}")

    def degradation(self) -> DegradeConfig:
        """The preset with ``degrade`` overrides applied (strict, as every config key)."""
        return DegradeConfig.from_dict({**dataclasses.asdict(PRESETS[self.preset]),
                                        **self.degrade}, where="data.degrade.")


@dataclass(frozen=True)
class ModelConfig:
    """RRDBNet generator sizes (ESRGAN: 23 blocks, 64 features, growth 32)."""

    num_block: int = 23
    num_feat: int = 64
    num_grow_ch: int = 32
    scale: int = 4

    def __post_init__(self) -> None:
        for name in ("num_block", "num_feat", "num_grow_ch"):
            _positive(f"model.{name}", getattr(self, name))
        if self.scale not in (1, 2, 4):
            raise ConfigError(f"model.scale must be 1, 2 or 4, got {self.scale}")


@dataclass(frozen=True)
class DiscConfig:
    """PatchGAN discriminator (pix2pix NLayer: 3 layers, 64 filters)."""

    ndf: int = 64
    n_layers: int = 3
    norm: Literal["batch", "spectral", "instance", "none"] = "batch"

    def __post_init__(self) -> None:
        _positive("disc.ndf", self.ndf)
        _positive("disc.n_layers", self.n_layers)


@dataclass(frozen=True)
class LossConfig:
    """Generator loss weights of the GAN stage (the PSNR stage uses plain L1), and the
    distillation term of both stages: ``l_teacher`` * L1(G(lr), teacher(lr))."""

    l_pix: float = 0.01
    l_adv: float = 0.005
    l_lpips: float = 0.001  # as printed in the paper; RealSR used VGG with weight 1.0
    lpips_backbone: str | None = field(default=None, metadata=PATH)  # None: standard lookup
    lpips_linear: str | None = field(default=None, metadata=PATH)  # None: standard lookup
    l_teacher: float = 0.0  # 0: no distillation
    teacher: str | None = field(default=None, metadata=PATH)  # x4 weights file (any RRDBNet)
    # low-frequency colour term of both stages: l_color * L1 of the color_pool x color_pool
    # block means of G(lr) and HR. L1 alone learns the conditional median, which drifted
    # facesr-default's mean colour by +1.9/+1.1/+2.8 levels (model card); 0: off
    l_color: float = 0.0
    color_pool: int = 8

    def __post_init__(self) -> None:
        for name in ("l_pix", "l_adv", "l_lpips", "l_teacher", "l_color"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        _positive("loss.color_pool", self.color_pool)
        if (self.l_teacher > 0) != (self.teacher is not None):
            raise ConfigError("distillation needs both loss.teacher (a weights file) and "
                              "loss.l_teacher > 0; give both or neither")


@dataclass(frozen=True)
class OptimConfig:
    """Adam for G and D; the LR is halved (``gamma``) at each milestone iteration."""

    lr: float = 1e-4
    lr_d: float | None = None  # None: same as lr
    betas: tuple[float, float] = (0.9, 0.99)
    milestones: tuple[int, ...] = (5_000, 10_000, 20_000, 30_000)
    gamma: float = 0.5
    grad_clip: float | None = None  # max global grad norm, per network; None: no clipping

    def __post_init__(self) -> None:
        if self.lr <= 0 or (self.lr_d is not None and self.lr_d <= 0):
            raise ConfigError("optim.lr and optim.lr_d must be > 0")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"optim.milestones must be increasing, got {self.milestones}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"optim.grad_clip must be > 0 or null, got {self.grad_clip}")


@dataclass(frozen=True)
class RunConfig:
    """The ``train`` section: stage, length, batch, logging, device."""

    stage: Literal["psnr", "gan"] = "psnr"
    iterations: int = 400_000
    batch: int = 16  # global batch (split over DDP processes)
    ema_decay: float = 0.999  # 0: no EMA
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    val_every: int = 5_000
    log_every: int = 100
    seed: int = 0
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:1
    amp: Literal["bf16", "fp16", "none"] = "bf16"  # cuda only; no-op on CPU
    # bf16 autocast on CPU too: about 2x faster per step on CPUs with AMX / AVX512-BF16
    # (RRDB-23, batch 4, LR 16 px: 1.2 s vs 2.7 s); off by default (fp32 is bit-exact)
    amp_cpu: Literal["bf16", "none"] = "none"
    channels_last: bool = True  # cuda only; no-op on CPU
    workers: int = 4  # DataLoader processes (0: load in the training process)
    threads: int = 0  # CPU intra-op threads (torch.set_num_threads, set by train()); 0: default
    init_g: str | None = field(default=None, metadata=PATH)  # generator weights to start from
    tensorboard: bool = True  # events in RUN/tb (needs the `tensorboard` package)
    # GAN stage: stop when a validation's PSNR-Y falls more than this many dB below bicubic's
    # (the stage has collapsed: more training will not bring it back); null: never stop
    collapse_db: float | None = 3.0
    # GAN stage: the first N iterations train the discriminator alone on the frozen generator,
    # so that its first verdicts on a strong PSNR model are informed ones (0: off)
    d_warmup: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch", "checkpoint_every", "keep_checkpoints", "val_every",
                     "log_every"):
            _positive(f"train.{name}", getattr(self, name))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.workers < 0:
            raise ConfigError(f"train.workers must be >= 0, got {self.workers}")
        if self.collapse_db is not None and self.collapse_db <= 0:
            raise ConfigError(f"train.collapse_db must be > 0 or null, got {self.collapse_db}")
        if self.d_warmup < 0:
            raise ConfigError(f"train.d_warmup must be >= 0, got {self.d_warmup}")
        if self.threads < 0:
            raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got "
                              f"{self.threads}")


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    disc: DiscConfig = field(default_factory=DiscConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        s = self.data.degradation().scale
        if s != self.model.scale:
            raise ConfigError(f"model.scale {self.model.scale} differs from the degradation's "
                              f"scale {s} (data.degrade.scale)")
        p = self.data.hr_patch
        if p % s:
            raise ConfigError(f"data.hr_patch {p} is not divisible by {s}")
        if self.train.stage == "gan" and patch_map_size(p, self.disc.n_layers) < 1:
            raise ConfigError(f"data.hr_patch {p} is too small for a {self.disc.n_layers}-layer "
                              f"PatchGAN (needs {3 * 2**self.disc.n_layers} px)")
        if self.train.stage == "gan" and self.loss.l_lpips > 0 and p < LPIPS_MIN_SIDE:
            raise ConfigError(f"data.hr_patch {p} is smaller than LPIPS's {LPIPS_MIN_SIDE} px")


def _positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{key} must be >= 1, got {value}")


def load_config(path: str | Path | None, overrides: Sequence[str] = (), *,
                base: Path | None = None, labels: dict[str, str] | None = None) -> TrainConfig:
    """Read a YAML config (None: all defaults), apply overrides, validate.

    Args:
        overrides: ``section.key=value`` items (``--set``); their relative paths are resolved
            against the current directory.
        base: directory the file's relative paths are resolved against (default: the file's
            own folder).
        labels: how an override key was given, for messages (``{"data.hq": "--hq"}``; default
            ``--set KEY=VALUE``).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or invalid value (names the key,
            and the ``--set`` or the file it came from).
    """
    data: object = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({yaml_error_line(e)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a config is a mapping of sections, got "
                              f"{type(data).__name__}")
        data = resolve_paths(TrainConfig, data, p.resolve().parent if base is None else base)
    data = apply_overrides(data, overrides)
    try:
        return from_dict(TrainConfig, data, base=Path.cwd())
    except ConfigError as e:
        raise ConfigError(_blame(str(e), path, overrides, labels or {})) from None


def _blame(message: str, path: str | Path | None, overrides: Sequence[str],
           labels: dict[str, str]) -> str:
    """``message`` prefixed with what caused it: the override whose key it names (the longest
    such key), else the config file."""
    best = ""
    for item in overrides:
        key = item.partition("=")[0].strip()
        named = (message.startswith((f"{key} ", f"{key}.", f"{key}[", f"{key}:"))
                 or f"'{key}" in message)
        if named and len(key) > len(best.partition("=")[0]):
            best = item
    if best:
        key = best.partition("=")[0].strip()
        return f"{labels.get(key, f'--set {best}')}: {message}"
    return f"{path}: {message}" if path is not None else message


def to_dict(cfg: object) -> dict:
    """Plain data (tuples as lists) for YAML/JSON."""
    return _plain(dataclasses.asdict(cfg))


def _plain(x: object) -> object:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def config_to_yaml(cfg: TrainConfig) -> str:
    """The whole config, every key, as YAML text that ``config_from_yaml`` reads back."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def config_from_yaml(text: str) -> TrainConfig:
    """Parse a config written by ``config_to_yaml`` (paths are kept as written)."""
    return from_dict(TrainConfig, yaml.safe_load(text) or {})


def config_diff(a: TrainConfig, b: TrainConfig) -> list[str]:
    """``key: old -> new`` lines for every setting that differs."""
    fa, fb = _flatten(to_dict(a)), _flatten(to_dict(b))
    return [f"{k}: {fa.get(k)!r} -> {fb.get(k)!r}" for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k)]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out
