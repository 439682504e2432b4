"""ESRGAN's RRDBNet generator with BasicSR parameter names, and its weight files.

Parameter names follow BasicSR (``conv_first``, ``body.N.rdb1.conv1`` ... ``conv_last``), so
BasicSR / Real-ESRGAN state dicts load strictly and our weights load in common SR tools.
Old ESRGAN names (xinntao/ESRGAN after 2019: ``RRDB_trunk``, ``trunk_conv``, ``upconv1``,
``HRconv``) are mapped by :func:`convert_state_dict` using :data:`ESRGAN_KEY_MAP`.

Weight files are safetensors with metadata ``format`` = ``facesr.rrdb``, ``version``, the
architecture (``num_block``, ``num_feat``, ``num_grow_ch``, ``scale``, ``in_ch``, ``out_ch``)
and ``source``, plus any other string fields of the writer (training adds its config, stage and
iteration); :func:`rrdb_file` defines it, :func:`save_rrdb` writes it, :func:`read_rrdb` checks
and reads it (:func:`load_rrdb` builds the network).
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor, nn

from facesr.io import atomic_write_bytes

RRDB_FORMAT = "facesr.rrdb"
RRDB_VERSION = "1"
ARCH_KEYS = ("in_ch", "out_ch", "num_feat", "num_block", "num_grow_ch", "scale")
META_KEYS = ("format", "version", "arch", "source", *ARCH_KEYS)  # the format's own fields
# what a weight file may ask for (inclusive); bigger nets are refused before anything is built
ARCH_LIMITS: dict[str, tuple[int, int]] = {
    "in_ch": (1, 4), "out_ch": (1, 4), "num_feat": (1, 256), "num_block": (1, 64),
    "num_grow_ch": (1, 256)}

# old ESRGAN name prefix -> BasicSR name prefix (applied to the start of each key, in order)
ESRGAN_KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
    (r"^trunk_conv\.", "conv_body."),
    (r"^upconv1\.", "conv_up1."),
    (r"^upconv2\.", "conv_up2."),
    (r"^HRconv\.", "conv_hr."),
)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; output = x + 0.2 * conv5(...)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in Residual Dense Block: three dense blocks, output = x + 0.2 * rdb3(...)."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, RRDB trunk, two nearest x2 upsamplings, two convs.

    ``scale`` 2 and 1 work as in BasicSR (the input is pixel-unshuffled first, so H and W must
    be divisible by 2 or 4); the trunk always upsamples x4.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        num_feat: trunk features (64 in ESRGAN).
        num_block: number of RRDBs (23 in ESRGAN).
        num_grow_ch: dense-block growth channels (32 in ESRGAN).
        scale: 4, 2 or 1.

    Shape: (N, in_ch, H, W) -> (N, out_ch, scale*H, scale*W); values are not clamped.

    Example:
        >>> import torch
        >>> net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
        >>> net(torch.rand(1, 3, 7, 9)).shape
        torch.Size([1, 3, 28, 36])
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, scale: int = 4) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.in_ch, self.out_ch = in_ch, out_ch
        self.num_feat, self.num_block, self.num_grow_ch = num_feat, num_block, num_grow_ch
        first_in = in_ch * (4 // scale) ** 2
        self.conv_first = nn.Conv2d(first_in, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        for m in self.modules():  # BasicSR's default_init_weights(scale=0.1)
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:  # meta: shapes only
                nn.init.kaiming_normal_(m.weight)
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    def arch(self) -> dict[str, int]:
        """The constructor arguments, e.g. for file metadata."""
        return {"in_ch": self.in_ch, "out_ch": self.out_ch, "num_feat": self.num_feat,
                "num_block": self.num_block, "num_grow_ch": self.num_grow_ch,
                "scale": self.scale}

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"expected (N, {self.in_ch}, H, W) input, got {tuple(x.shape)}")
        if self.scale < 4:
            r = 4 // self.scale
            if x.shape[-2] % r or x.shape[-1] % r:
                raise ValueError(f"scale {self.scale} needs H and W divisible by {r}, "
                                 f"got {tuple(x.shape[-2:])}")
            x = F.pixel_unshuffle(x, r)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def convert_state_dict(state: Mapping[str, object]) -> dict[str, Tensor]:
    """Unwrap and rename a BasicSR, Real-ESRGAN or old-ESRGAN state dict to our names.

    A ``params_ema`` wrapper is preferred over ``params`` (as Real-ESRGAN does); old ESRGAN
    names are renamed with :data:`ESRGAN_KEY_MAP`; other keys pass through unchanged, so a
    strict ``load_state_dict`` still reports anything unknown.

    Args:
        state: a state dict, or a dict holding one under ``params_ema`` or ``params``.

    Returns:
        A new dict with BasicSR names.
    """
    for wrapper in ("params_ema", "params"):
        inner = state.get(wrapper)
        if isinstance(inner, Mapping):
            state = inner
            break
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"state dict entry {key!r} is not a tensor ({type(value).__name__})")
        for pattern, repl in ESRGAN_KEY_MAP:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def arch_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, int]:
    """Infer RRDBNet's constructor arguments from a (converted) state dict.

    Raises:
        ValueError: a key tensor is missing or not a conv weight; the message names it.
    """
    convs = {}
    for key in ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_last.weight"):
        if key not in state:
            raise ValueError(f"not an RRDBNet state dict: missing {key!r}")
        if state[key].ndim != 4:
            raise ValueError(f"not an RRDBNet state dict: {key!r} has shape "
                             f"{list(state[key].shape)}, not a conv weight (4 dimensions)")
        convs[key] = state[key].shape
    first, grow, last = convs.values()
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    in_total = int(first[1])
    in_ch = int(last[0])  # SR nets map RGB to RGB; the rest follows from conv_first
    scale = ({1: 4, 4: 2, 16: 1}.get(in_total // in_ch)
             if in_ch > 0 and in_total % in_ch == 0 else None)
    if scale is None:
        raise ValueError(f"cannot infer scale: conv_first takes {in_total} channels for "
                         f"{in_ch}-channel output")
    return {"in_ch": in_ch, "out_ch": int(last[0]), "num_feat": int(first[0]),
            "num_block": len(blocks), "num_grow_ch": int(grow[0]), "scale": scale}


def check_arch(arch: Mapping[str, int]) -> None:
    """Refuse architectures outside :data:`ARCH_LIMITS` (before anything is built).

    Raises:
        ValueError: names the field, e.g. ``num_block 10000000 is outside 1..64``.
    """
    for key, (lo, hi) in ARCH_LIMITS.items():
        v = arch[key]
        if not lo <= v <= hi:
            raise ValueError(f"{key} {v} is outside {lo}..{hi}")
    if arch["scale"] not in (1, 2, 4):
        raise ValueError(f"scale {arch['scale']} is not 1, 2 or 4")


def state_dict_shapes(arch: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of ``RRDBNet(**arch).state_dict()``, without building it.

    >>> s = state_dict_shapes({"in_ch": 3, "out_ch": 3, "num_feat": 8, "num_block": 1,
    ...                        "num_grow_ch": 4, "scale": 4})
    >>> len(s), s["body.0.rdb1.conv5.weight"]
    (42, (8, 24, 3, 3))
    """
    nf, gc = arch["num_feat"], arch["num_grow_ch"]
    convs = {"conv_first": (arch["in_ch"] * (4 // arch["scale"]) ** 2, nf)}
    for i in range(arch["num_block"]):
        for j in (1, 2, 3):
            for n in (1, 2, 3, 4):
                convs[f"body.{i}.rdb{j}.conv{n}"] = (nf + (n - 1) * gc, gc)
            convs[f"body.{i}.rdb{j}.conv5"] = (nf + 4 * gc, nf)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        convs[name] = (nf, nf)
    convs["conv_last"] = (nf, arch["out_ch"])
    shapes: dict[str, tuple[int, ...]] = {}
    for name, (c_in, c_out) in convs.items():
        shapes[f"{name}.weight"] = (c_out, c_in, 3, 3)
        shapes[f"{name}.bias"] = (c_out,)
    return shapes


def _check_state(state: Mapping[str, Tensor], arch: Mapping[str, int]) -> None:
    """Names, shapes and finiteness of every tensor, against what ``arch`` implies."""
    expected = state_dict_shapes(arch)
    what = "RRDBNet " + ", ".join(f"{k}={v}" for k, v in arch.items())
    missing = [k for k in expected if k not in state]
    if missing:
        raise ValueError(f"tensor {missing[0]!r} is missing ({len(missing)} missing for {what})")
    extra = [k for k in state if k not in expected]
    if extra:
        raise ValueError(f"unexpected tensor {extra[0]!r} ({len(extra)} not in {what})")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ValueError(f"tensor {key!r} has shape {list(state[key].shape)}, expected "
                             f"{list(shape)} for {what}")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"tensor {key!r} holds NaN or infinite values (broken weights)")


def _arch_from_meta(meta: Mapping[str, str]) -> dict[str, int]:
    arch = {}
    for key in ARCH_KEYS:
        if key not in meta:
            raise ValueError(f"metadata lacks the architecture field {key!r}")
        text = meta[key]
        try:
            arch[key] = int(text)
        except ValueError:
            raise ValueError(f"metadata field {key!r} is {text[:40]!r}, not an integer") from None
    return arch


def rrdb_file(model: RRDBNet, *, dtype: torch.dtype = torch.float32, source: str = "",
              metadata: Mapping[str, str] | None = None
              ) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and metadata of a ``facesr.rrdb`` weight file: the one definition of the
    format (:func:`save_rrdb` writes it; training checkpoints store G and its EMA with it;
    :func:`read_rrdb` reads it).

    Args:
        dtype: ``torch.float32`` or ``torch.float16`` for the stored conv weights; biases
            (0.2% of the parameters) always stay float32, so fp16-sourced weights (e.g. ncnn
            Real-ESRGAN) round-trip exactly.
        source: free text saying where the weights came from.
        metadata: more string fields (e.g. a training config); they may not replace the
            format's own (:data:`META_KEYS`).
    """
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"dtype must be float32 or float16, got {dtype}")
    extra = dict(metadata or {})
    if clash := sorted(set(extra) & set(META_KEYS)):
        raise ValueError(f"metadata field {clash[0]!r} belongs to the {RRDB_FORMAT} format")
    tensors = {k: v.detach().to("cpu", torch.float32 if k.endswith(".bias") else dtype)
               .contiguous() for k, v in model.state_dict().items()}
    meta = {"format": RRDB_FORMAT, "version": RRDB_VERSION, "arch": "RRDBNet",
            **{k: str(v) for k, v in model.arch().items()}, **extra, "source": source}
    return tensors, meta


def save_rrdb(path: str | os.PathLike, model: RRDBNet, *, dtype: torch.dtype = torch.float32,
              source: str = "", metadata: Mapping[str, str] | None = None) -> Path:
    """Write the model's weights as a ``facesr.rrdb`` safetensors file, atomically (arguments:
    :func:`rrdb_file`)."""
    tensors, meta = rrdb_file(model, dtype=dtype, source=source, metadata=metadata)
    return atomic_write_bytes(path, save(tensors, metadata=meta))


@dataclass(frozen=True)
class RRDBFile:
    """A checked weight file: tensors with BasicSR names (as stored), the architecture, and
    the metadata (empty for ``.pth`` files)."""

    state: dict[str, Tensor]
    arch: dict[str, int]
    meta: dict[str, str]

    def model(self, device: torch.device | str = "cpu") -> RRDBNet:
        """The network with these weights, in float32."""
        with torch.device("meta"):  # shapes only; the weights come from the file
            model = RRDBNet(**self.arch)
        # copies: safetensors' tensors may map the file, and a file replaced while the model
        # is in use must not change its weights (fp32 tensors' .float() would share them)
        model.load_state_dict({k: v.to(torch.float32, copy=True) for k, v in self.state.items()},
                              strict=True, assign=True)
        return model.to(device)


def read_rrdb(path: str | os.PathLike) -> RRDBFile:
    """Read and check a weight file: our safetensors, or a BasicSR/ESRGAN ``.pth``.

    A ``.safetensors`` file must carry metadata ``format`` = ``facesr.rrdb`` and a version this
    facesr reads; its architecture comes from the metadata. ``.pth`` files are read with
    ``torch.load(weights_only=True)`` (no pickled code runs) and their architecture is
    inferred from the tensor shapes. The architecture is bounded (:data:`ARCH_LIMITS`) and
    every tensor's name, shape and finiteness is checked against it; nothing is built.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unreadable file, another format or version, a bad architecture field
            or tensor; the message starts with the file and names the field or tensor.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: weight file not found")
    if p.suffix.lower() == ".safetensors":
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = dict(f.metadata() or {})
                _check_format(p, meta)
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{p}: not a readable safetensors file ({e})") from None
    else:
        state, meta = _torch_load(p), {}
    try:
        state = convert_state_dict(state)
        arch = (_arch_from_meta(meta) if meta.get("format") == RRDB_FORMAT
                else arch_from_state_dict(state))
        check_arch(arch)
        _check_state(state, arch)  # before building: a bad file must not build a huge net
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    return RRDBFile(state, arch, meta)


def _check_format(p: Path, meta: Mapping[str, str]) -> None:
    if meta.get("format") != RRDB_FORMAT:
        raise ValueError(f"{p}: not a facesr RRDBNet file (metadata format "
                         f"{meta.get('format')!r}, expected {RRDB_FORMAT!r}); convert it "
                         "with facesr models import-ncnn or save_rrdb")
    if meta.get("version") != RRDB_VERSION:
        raise ValueError(f"{p}: file format version {meta.get('version')!r} is not "
                         f"supported (this facesr reads version {RRDB_VERSION})")


def _torch_load(p: Path) -> Mapping[str, object]:
    """A ``.pth`` state dict, read without running pickled code."""
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notice: not the user's concern
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{p}: cannot load as an RRDBNet: not a plain state dict (it holds "
                         "other pickled objects, or is no torch file); facesr reads .pth only "
                         "with torch.load(weights_only=True) - convert it to .safetensors "
                         "where you trust it") from None
    except (RuntimeError, KeyError, EOFError) as e:  # weights_only refusals, truncated files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{p}: cannot load as an RRDBNet ({first})") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{p}: expected a state dict, got {type(state).__name__}")
    return state


def load_rrdb(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> RRDBNet:
    """Build an RRDBNet from a weight file checked by :func:`read_rrdb` (float32 weights)."""
    return read_rrdb(path).model(device)


def interpolate(a: RRDBNet, b: RRDBNet, alpha: float) -> RRDBNet:
    """ESRGAN's network interpolation (Wang et al. 2018, section 3.4): a new network whose every
    parameter is ``alpha * a + (1 - alpha) * b``. With ``a`` a PSNR-oriented model and ``b`` a
    GAN-stage one fine-tuned from it (or its ancestor), ``alpha`` trades fidelity for texture
    smoothly, without the noise a pixel-wise blend of the two outputs keeps.

    ``alpha`` in (1, 2] extrapolates past ``a``, away from ``b`` (and [-1, 0) past ``b``): with
    ``a`` itself a half-and-half mix of ``b`` and a third network ``c``, ``alpha = 2`` gives ``c``
    back (up to the stored precision).

    Raises:
        ValueError: the architectures differ (parameter-wise interpolation needs one shape), or
            ``alpha`` is outside [-1, 2].
    """
    if not -1.0 <= alpha <= 2.0:
        raise ValueError(f"alpha must be in [-1, 2], got {alpha}")
    if a.arch() != b.arch():
        raise ValueError(f"different architectures: {a.arch()} and {b.arch()}; network "
                         "interpolation needs two networks of one architecture")
    out = copy.deepcopy(a)
    sb = b.state_dict()
    out.load_state_dict({k: (alpha * v.float() + (1 - alpha) * sb[k].float()).to(v.dtype)
                         for k, v in a.state_dict().items()})
    return out


def widen_growth(model: RRDBNet, num_grow_ch: int = 32, *, seed: int = 0,
                 init_scale: float = 0.1) -> RRDBNet:
    """The same function in a network of growth ``num_grow_ch`` (more than the model's): a
    starting point for training a model that loaders which assume growth 32 (spandrel, as
    chaiNNer uses it) can build, from one of smaller growth (facesr-default's 16).

    Every dense block's convs 1-4 get the extra output channels (Kaiming-normal weights times
    ``init_scale``, BasicSR's initialisation, seeded; zero bias), and every later conv of the
    block gets zero weights on them, so the output is unchanged (up to float rounding: the
    concatenations are reordered) while gradients reach both the new channels and the weights
    that read them.
    """
    arch = model.arch()
    old = arch["num_grow_ch"]
    if num_grow_ch <= old:
        raise ValueError(f"num_grow_ch {num_grow_ch} is not more than the model's {old}")
    nf = arch["num_feat"]
    out = RRDBNet(**{**arch, "num_grow_ch": num_grow_ch})
    state = model.state_dict()
    gen = torch.Generator().manual_seed(seed)
    new = {}
    for key, v in out.state_dict().items():
        src = state[key].float()
        part = key.rsplit(".", 2)
        if ".rdb" not in key:  # a dense block's keys are all ...rdbN.convK.weight / .bias
            new[key] = src
            continue
        k = int(part[-2][4:])  # conv1..conv5
        w = torch.zeros_like(v)
        if part[-1] == "bias":
            w[:src.shape[0]] = src
            new[key] = w
            continue
        if k < 5:  # the extra output channels: small random weights
            fan_in = v.shape[1] * 9
            w[old:] = torch.randn(v[old:].shape, generator=gen) * (2.0 / fan_in) ** 0.5 * init_scale
        # input channels: x (nf), then x1..x{k-1}, each ``old`` of ``num_grow_ch`` wide
        rows = src.shape[0]
        w[:rows, :nf] = src[:, :nf]
        for j in range(k - 1):
            w[:rows, nf + j * num_grow_ch:nf + j * num_grow_ch + old] = \
                src[:, nf + j * old:nf + (j + 1) * old]
        new[key] = w
    out.load_state_dict(new)
    return out
