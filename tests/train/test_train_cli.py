"""``facesr train``: a run, its folder, --resume, and the errors a user can make."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from facesr.cli import app
from facesr.models import load_rrdb
from facesr.train.config import TrainConfig, config_from_yaml, config_to_yaml

Tiny = Callable[..., TrainConfig]
runner = CliRunner()


@pytest.fixture()
def config(tiny: Tiny, pool_files: tuple[Path, Path], tmp_path: Path) -> Path:
    kernels, noise = pool_files
    cfg = tiny("train.iterations=3", "train.val_every=3", f"data.kernels={kernels}",
               f"data.noise={noise}")
    path = tmp_path / "exp.yaml"
    path.write_text(config_to_yaml(cfg), encoding="utf-8")
    return path


def test_help() -> None:
    r = runner.invoke(app, ["train", "--help"])
    assert r.exit_code == 0
    assert "--resume" in r.output and "--set" in r.output


def test_a_run_then_resume_with_more_iterations(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(config), "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert "iteration 3, val PSNR-Y" in r.output
    assert config_from_yaml((run / "config.yaml").read_text()) == config_from_yaml(
        config.read_text())
    assert load_rrdb(run / "model.safetensors").arch()["num_feat"] == 8
    assert json.loads((run / "latest.json").read_text())["iteration"] == 3
    heldout = (run / "heldout.txt").read_text().split()
    assert heldout and all(Path(f).is_file() for f in heldout)

    r = runner.invoke(app, ["train", str(config), "--out", str(run)])
    assert r.exit_code == 2 and "already holds a run" in r.output

    r = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.iterations=5"])
    assert r.exit_code == 0, r.output
    assert "train.iterations: 3 -> 5" in r.output and "iteration 5" in r.output
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["iterations"] == 5


def test_config_errors_name_the_key(config: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", str(config), "--set", "train.bacth=2",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "unknown config key 'train.bacth'" in r.output
    r = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "config file not found" in r.output
    r = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert r.exit_code == 2 and "not a facesr run folder" in r.output
    r = runner.invoke(app, ["train", str(config), "--set", "data.kernels=null",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "set data.kernels" in r.output
    assert not (tmp_path / "r" / "latest.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None,
                    reason="tensorboard is installed")
def test_tensorboard_without_the_package_says_what_to_do(config: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", str(config), "--set", "train.tensorboard=true",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "pip install" in r.output
