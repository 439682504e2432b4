"""The training loop on CPU with tiny models: it learns, both stages run, it logs what it says."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facesr.degrade.degradation import Pools
from facesr.models import RRDBNet, load_rrdb, save_rrdb
from facesr.train.config import ConfigError, TrainConfig
from facesr.train.loop import train
from facesr.train.steps import lr_at

Tiny = Callable[..., TrainConfig]


def _symmetric_face(path: Path, size: int = 32) -> Path:
    """Concentric colour rings: the same image under every flip and transpose, so the random
    augmentation leaves exactly one (LR, HR) pair to learn."""
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    img = np.stack([0.5 + 0.35 * np.cos(0.3 * f * r + p)
                    for f, p in ((1.0, 0.0), (0.7, 1.0), (1.3, 2.0))], axis=-1)
    cv2.imwrite(str(path), (img * 255).round().astype(np.uint8))
    return path


def _losses(tag: str) -> tuple[list[float], Callable]:
    seen: list[float] = []

    def on_step(done: int, total: int, logged: dict[str, float] | None) -> None:
        if logged is not None and tag in logged:
            seen.append(logged[tag])

    return seen, on_step


@pytest.mark.parametrize("amp_cpu", ["none", "bf16"])
def test_tiny_model_overfits_one_pair(tiny: Tiny, pools: Pools, tmp_path: Path,
                                      amp_cpu: str) -> None:
    face = _symmetric_face(tmp_path / "one.png")
    cfg = tiny(f"data.hq=[{face}]", "data.factors=[1.0]", "data.val_fraction=0",
               "data.preset=bicubic", "optim.lr=5e-3", "train.batch=1",
               "train.iterations=200", "train.checkpoint_every=200", "train.ema_decay=0",
               f"train.amp_cpu={amp_cpu}")
    seen, on_step = _losses("train/l_pix")
    train(cfg, tmp_path / "run", pools=pools, on_step=on_step)
    assert len(seen) == 200
    first, last = seen[0], float(np.mean(seen[-10:]))
    assert first > 0.3  # an untrained RRDBNet outputs ~0
    assert last < first / 10, f"L1 fell only from {first:.4f} to {last:.4f}"


def test_cpu_bf16_autocast_is_used_only_when_asked(tiny: Tiny, pools: Pools,
                                                   tmp_path: Path) -> None:
    def weights(name: str, *sets: str) -> dict[str, torch.Tensor]:
        cfg = tiny("train.iterations=2", "train.checkpoint_every=2", "train.ema_decay=0", *sets)
        train(cfg, tmp_path / name, pools=pools)
        return load_file(tmp_path / name / "model.safetensors")

    fp32, again, bf16 = weights("a"), weights("b"), weights("c", "train.amp_cpu=bf16")
    assert all(torch.equal(fp32[k], again[k]) for k in fp32)  # fp32 is deterministic...
    assert not all(torch.equal(fp32[k], bf16[k]) for k in fp32)  # ...and bf16 is another path


def test_distillation_pulls_the_student_towards_the_teacher(tiny: Tiny, pools: Pools,
                                                            tmp_path: Path) -> None:
    torch.manual_seed(1)
    teacher = RRDBNet(**tiny().model.__dict__)
    with torch.no_grad():
        teacher.conv_last.bias.fill_(0.6)  # a teacher far from any untrained student
    path = save_rrdb(tmp_path / "teacher.safetensors", teacher, source="test")
    cfg = tiny(f"loss.teacher={path}", "loss.l_teacher=10", "optim.lr=2e-3",
               "train.iterations=60", "train.checkpoint_every=60", "train.ema_decay=0")
    seen, on_step = _losses("train/l_teacher")
    train(cfg, tmp_path / "run", pools=pools, on_step=on_step)
    assert seen and seen[0] > 0.2
    assert float(np.mean(seen[-3:])) < seen[0] / 4, f"teacher L1 fell only to {seen[-3:]}"


def test_distillation_needs_a_teacher_and_a_weight(tiny: Tiny, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loss.teacher"):
        tiny("loss.l_teacher=1")
    with pytest.raises(ConfigError, match="l_teacher"):
        tiny(f"loss.teacher={tmp_path / 'x.safetensors'}")


def test_gan_stage_trains_both_networks(tiny: Tiny, pools: Pools, tmp_path: Path) -> None:
    cfg = tiny("train.stage=gan", "train.iterations=3", "train.checkpoint_every=1",
               "train.keep_checkpoints=5", "loss.l_lpips=0.01", "optim.grad_clip=10.0")
    logged: list[dict] = []
    train(cfg, tmp_path / "run", pools=pools,
          on_step=lambda done, total, scalars: logged.append(scalars))
    for key in ("train/l_pix", "train/l_adv", "train/l_lpips", "train/l_d", "train/d_real",
                "train/d_fake", "train/grad_norm_g", "train/grad_norm_d"):
        assert all(math.isfinite(s[key]) for s in logged), key
    assert all(s["train/l_lpips"] > 0 for s in logged)  # LPIPS-alex of a bad SR is not 0
    s = logged[0]
    want = 0.01 * s["train/l_pix"] + 0.005 * s["train/l_adv"] + 0.01 * s["train/l_lpips"]
    assert s["train/l_g"] == pytest.approx(want, rel=1e-5)
    # the discriminator is updated every iteration, and its state is checkpointed
    d1, d2 = (load_file(tmp_path / "run" / "ckpt" / f"00000000{i}" / "D.safetensors")
              for i in (1, 2))
    assert d1.keys() == d2.keys()
    assert any(not torch.equal(d1[k], d2[k]) for k in d1 if k.endswith("weight"))


def test_adversarial_term_reaches_the_generator(tiny: Tiny, pools: Pools,
                                                tmp_path: Path) -> None:
    """With every weight 0 G keeps its initialisation; with the RaGAN term alone it moves."""
    torch.manual_seed(0)  # the loop seeds with train.seed before building G
    start = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    for l_adv, moves in ((0.0, False), (0.5, True)):
        cfg = tiny("train.stage=gan", "train.iterations=2", f"loss.l_adv={l_adv}",
                   "loss.l_pix=0.0", "train.ema_decay=0")
        train(cfg, tmp_path / f"adv{l_adv}", pools=pools)
        g = load_file(tmp_path / f"adv{l_adv}" / "model.safetensors")
        assert g.keys() == start.keys()
        assert any(not torch.equal(v, start[k]) for k, v in g.items()) == moves


def test_validation_scalars_images_and_lr_schedule(tiny: Tiny, pools: Pools,
                                                  tmp_path: Path) -> None:
    cfg = tiny("train.iterations=4", "train.val_every=2", "optim.milestones=[2, 3]",
               "optim.gamma=0.1")
    result = train(cfg, tmp_path / "run", pools=pools)
    records = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["train/lr"] for r in records if "train/lr" in r]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    val = [r for r in records if "val/psnr_y" in r]
    assert [r["iter"] for r in val] == [2, 4]
    for r in val:
        assert 0 < r["val/psnr_y"] < 60 and -1 <= r["val/ssim_y"] <= 1
        assert r["val/psnr_y_bicubic"] > 10
    assert result["val"] == {k: v for k, v in val[-1].items() if k.startswith("val/")}
    images = sorted(p.name for p in (tmp_path / "run" / "images").iterdir())
    assert images == ["val_lr_sr_hr_000000002.png", "val_lr_sr_hr_000000004.png"]
    grid = cv2.imread(str(tmp_path / "run" / "images" / images[0]))
    assert grid.shape == (4 * 32, 3 * 32, 3)  # val_max rows of [bicubic | SR | HR]
    assert lr_at(4, 1e-4, (5_000, 10_000, 20_000, 30_000), 0.5) == 1e-4
    assert lr_at(20_000, 1e-4, (5_000, 10_000, 20_000, 30_000), 0.5) == 1e-4 / 8


def test_init_g_starts_from_the_given_weights(tiny: Tiny, pools: Pools,
                                              tmp_path: Path) -> None:
    torch.manual_seed(123)
    init = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    save_rrdb(tmp_path / "init.safetensors", init)
    cfg = tiny("train.stage=gan", "train.iterations=1", "optim.lr=1e-12",
               f"train.init_g={tmp_path / 'init.safetensors'}")
    train(cfg, tmp_path / "run", pools=pools)
    out = load_rrdb(tmp_path / "run" / "model.safetensors").state_dict()
    for k, v in init.state_dict().items():
        torch.testing.assert_close(out[k], v, rtol=0, atol=1e-9)
    wrong = RRDBNet(num_feat=16, num_block=1, num_grow_ch=4)
    save_rrdb(tmp_path / "wrong.safetensors", wrong)
    with pytest.raises(ConfigError, match="does not match the model section"):
        train(tiny(f"train.init_g={tmp_path / 'wrong.safetensors'}"), tmp_path / "run2",
              pools=pools)


def test_a_new_run_never_overwrites_an_old_one(tiny: Tiny, pools: Pools,
                                               tmp_path: Path) -> None:
    train(tiny("train.iterations=2"), tmp_path / "run", pools=pools)
    with pytest.raises(FileExistsError, match="resume it or choose a new one"):
        train(tiny("train.iterations=2"), tmp_path / "run", pools=pools)


def test_tensorboard_gets_scalars_and_image_grids(tiny: Tiny, pools: Pools,
                                                 tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny("train.iterations=4", "train.tensorboard=true"), tmp_path / "run", pools=pools)
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    assert {"train/l_pix", "train/it_per_s", "val/psnr_y"} <= set(events.Tags()["scalars"])
    assert "val/lr_sr_hr" in events.Tags()["images"]


def test_color_loss_sees_a_tint_and_not_detail() -> None:
    from facesr.train.steps import color_loss, generator_loss

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert color_loss(hr + 2 / 255, hr).item() > 1.9 / 255
    checker = ((torch.arange(32).view(1, 32) + torch.arange(32).view(32, 1)) % 2) * 0.1 - 0.05
    assert color_loss(hr + checker, hr).item() < 1e-6
    loss, stats = generator_loss(hr + 2 / 255, hr, d=None, lpips=None, l_pix=1.0, l_adv=0.0,
                                 l_lpips=0.0, l_color=2.0)
    assert "train/l_color" in stats
    assert abs(loss.item() - (stats["train/l_pix"] + 2.0 * stats["train/l_color"]).item()) < 1e-6


def test_d_warmup_trains_only_the_discriminator_first(tiny: Tiny, pools: Pools,
                                                      tmp_path: Path) -> None:
    cfg = tiny("train.stage=gan", "train.iterations=3", "train.checkpoint_every=1",
               "train.keep_checkpoints=5", "train.d_warmup=2")
    logged: list[dict] = []
    train(cfg, tmp_path / "run", pools=pools,
          on_step=lambda done, total, scalars: logged.append(scalars))
    ck = tmp_path / "run" / "ckpt"
    g = [load_file(ck / f"00000000{i}" / "G.safetensors") for i in (1, 2, 3)]
    d = [load_file(ck / f"00000000{i}" / "D.safetensors") for i in (1, 2)]
    assert all(torch.equal(g[0][k], g[1][k]) for k in g[0])  # frozen while D warms up
    assert any(not torch.equal(g[1][k], g[2][k]) for k in g[1])  # then it learns
    assert any(not torch.equal(d[0][k], d[1][k]) for k in d[0] if k.endswith("weight"))
    assert "train/l_g" not in logged[0] and "train/l_d" in logged[0]
    assert "train/l_g" in logged[2]
