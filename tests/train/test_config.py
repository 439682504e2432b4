"""Config strictness, overrides, path resolution, YAML round trip, the shipped configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from facesr.train.config import (
    ConfigError,
    TrainConfig,
    config_diff,
    config_from_yaml,
    config_to_yaml,
    load_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_is_an_error_that_names_it(tmp_path: Path) -> None:
    p = _write(tmp_path, "train:\n  iterations: 10\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.lrr'.*iterations"):
        load_config(p)
    with pytest.raises(ConfigError, match="unknown config key 'optimizer'"):
        load_config(_write(tmp_path, "optimizer:\n  lr: 0.1\n"))


def test_wrong_types_and_values_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.batch must be an integer"):
        load_config(_write(tmp_path, "train:\n  batch: 1.5\n"))
    with pytest.raises(ConfigError, match="train.stage must be one of 'psnr', 'gan'"):
        load_config(None, ["train.stage=wgan"])
    with pytest.raises(ConfigError, match="optim.betas must be a list of 2"):
        load_config(None, ["optim.betas=[0.9]"])
    with pytest.raises(ConfigError, match="data.degrade: unknown degradation settings"):
        load_config(None, ["data.degrade.jpeg_probability=0.5"])
    with pytest.raises(ConfigError, match="data.hr_patch 30 is not divisible by 4"):
        load_config(None, ["data.hr_patch=30"])


def test_set_overrides_are_parsed_as_yaml_and_checked(tmp_path: Path) -> None:
    p = _write(tmp_path, "optim:\n  lr: 1.0e-4\ntrain:\n  batch: 16\n")
    cfg = load_config(p, ["optim.lr=2e-4", "train.batch=8", "optim.milestones=[10, 20]",
                          "train.init_g=null", "data.degrade.jpeg_prob=0.5"])
    assert cfg.optim.lr == 2e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.train.batch == 8 and cfg.optim.milestones == (10, 20)
    assert cfg.data.degradation().jpeg_prob == 0.5
    with pytest.raises(ConfigError, match="unknown config key 'train.bacth'"):
        load_config(p, ["train.bacth=8"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(p, ["train.batch"])
    assert config_diff(load_config(p), cfg)[0].startswith("data.degrade")


def test_a_files_paths_are_relative_to_its_folder_and_sets_to_the_current_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "configs"
    sub.mkdir()
    p = sub / "exp.yaml"
    p.write_text("data:\n  hq: [../shared/data/faces_hq]\n  kernels: pools/k.safetensors\n"
                 "train:\n  init_g: ~/g.safetensors\n", encoding="utf-8")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # wherever it is run from, the file means the same paths
    cfg = load_config(Path("../configs/exp.yaml"))
    assert cfg.data.hq == (str(tmp_path / "shared" / "data" / "faces_hq"),)
    assert cfg.data.kernels == str(sub / "pools" / "k.safetensors")
    assert cfg.train.init_g == str(Path("~/g.safetensors").expanduser())
    assert cfg.data.noise is None
    cfg = load_config(p, ["data.noise=pools/n.safetensors", "data.hq=hq.txt"])
    assert cfg.data.noise == str(elsewhere / "pools" / "n.safetensors")
    assert cfg.data.hq == (str(elsewhere / "hq.txt"),)  # one value of a list is a list of one
    assert cfg.data.kernels == str(sub / "pools" / "k.safetensors")


def test_errors_name_the_set_that_caused_them(tmp_path: Path) -> None:
    p = _write(tmp_path, "train:\n  batch: 4\n")
    with pytest.raises(ConfigError, match=r"^--set train.batch=1.5: train.batch must be an "):
        load_config(p, ["train.iterations=10", "train.batch=1.5"])
    with pytest.raises(ConfigError, match=r"^--set train.bacth=8: unknown config key"):
        load_config(p, ["train.bacth=8"])
    with pytest.raises(ConfigError, match=r"^--iterations 0: train.iterations must be >= 1"):
        load_config(p, ["train.iterations=0"], labels={"train.iterations": "--iterations 0"})
    bad = _write(tmp_path, "train:\n  batch: 1.5\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: train.batch must be"):
        load_config(bad, ["train.iterations=10"])  # the file's own error blames the file


def test_yaml_round_trip_is_exact(tmp_path: Path) -> None:
    cfg = load_config(None, ["data.hq=[/a, /b.txt]", "optim.grad_clip=1.0",
                             "train.stage=gan", "data.degrade.jpeg_quality=[20, 40]"])
    text = config_to_yaml(cfg)
    assert config_from_yaml(text) == cfg
    p = _write(tmp_path, text)
    assert load_config(p) == cfg  # absolute paths stay as they are
    assert config_from_yaml("") == TrainConfig()


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.model.scale == 4 and cfg.data.hq


def test_paper_config_has_the_papers_settings() -> None:
    cfg = load_config(CONFIGS / "paper.yaml")
    m, o, lo, t = cfg.model, cfg.optim, cfg.loss, cfg.train
    assert (m.num_block, m.num_feat, m.num_grow_ch) == (23, 64, 32)
    assert (t.stage, t.batch, t.iterations, cfg.data.hr_patch) == ("gan", 16, 400_000, 128)
    assert (o.lr, o.milestones, o.gamma) == (1e-4, (5_000, 10_000, 20_000, 30_000), 0.5)
    assert (lo.l_pix, lo.l_adv, lo.l_lpips) == (0.01, 0.005, 0.001)
    assert (cfg.disc.n_layers, cfg.disc.ndf) == (3, 64)
    assert cfg.data.preset == "paper"
