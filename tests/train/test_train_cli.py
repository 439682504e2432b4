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


def test_the_loop_connects_from_another_folder(tiny: Tiny, pool_files: tuple[Path, Path],
                                               faces_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A config without data paths; the curated list, the pools and the limits come from
    options; the run folder is named after the config and printed; the split is reported."""
    cfg_dir = tmp_path / "project" / "configs"
    cfg_dir.mkdir(parents=True)
    config = cfg_dir / "small.yaml"
    text = config_to_yaml(tiny("train.iterations=2", "train.val_every=2"))
    config.write_text(text.replace(str(faces_dir), "nowhere"), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    kernels, noise = pool_files
    files = sorted(faces_dir.iterdir())
    # a curated list as facesr data curate writes it, here with paths relative to the list
    (work / "hq.txt").write_text("".join(f"../hq/{f.name}\n" for f in files[::-1]))
    args = ["train", "../project/configs/small.yaml", "--hq", "hq.txt", "--kernels",
            str(kernels), "--noise", str(noise), "--iterations", "3", "--limit", "8",
            "--val", "2", "--threads", "1"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    run = work / "runs" / "small-psnr"
    assert "runs/small-psnr" in r.output and "iteration 3" in r.output
    assert "8 HQ files (the first 8 of 10: data.limit): 2 held out for validation" in r.output
    saved = config_from_yaml((run / "config.yaml").read_text())
    assert saved.data.hq == (str(work / "hq.txt"),) and saved.train.threads == 1
    assert (saved.data.limit, saved.data.val_count, saved.train.iterations) == (8, 2, 3)
    heldout = (run / "heldout.txt").read_text().split()
    first8 = {str(f) for f in files[::-1][:8]}
    assert len(heldout) == 2 and set(heldout) <= first8  # the list's order, then the limit
    assert "--hq runs/small-psnr/heldout.txt" in r.output  # the evaluate command to run next
    r = runner.invoke(app, args)  # the same command again: a new run beside it
    assert r.exit_code == 0, r.output
    assert (work / "runs" / "small-psnr-2" / "model.safetensors").is_file()


def test_option_errors_name_the_option(config: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", str(config), "--val", "100", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "leave none for training" in r.output
    r = runner.invoke(app, ["train", str(config), "--set", "data.hq=[]",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "no HQ images found" in r.output
    r = runner.invoke(app, ["train", str(config), "--set", "train.collapse_db=-1",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert "--set train.collapse_db=-1: train.collapse_db must be > 0" in r.output


def test_a_pairs_folder_is_refused_with_what_to_give(config: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs"
    for sub in ("lr", "hr"):
        (pairs / sub).mkdir(parents=True)
    (pairs / "manifest.jsonl").write_text("")
    r = runner.invoke(app, ["train", str(config), "--hq", str(pairs), "--out",
                            str(tmp_path / "r")])
    assert r.exit_code == 2 and "a `facesr pairs` folder" in r.output and "--hq" in r.output


def test_a_collapsed_gan_stage_stops_with_what_to_change(config: Path, tmp_path: Path) -> None:
    # random weights score far below bicubic: the guard stops the run at its first validation
    run = tmp_path / "gan"
    r = runner.invoke(app, ["train", str(config), "--set", "train.stage=gan", "--set",
                            "train.collapse_db=3", "--set", "train.val_every=1",
                            "--iterations", "4", "--out", str(run)])
    assert r.exit_code == 1, r.output
    assert "the GAN stage has collapsed" in r.output and "loss.l_adv" in r.output
    assert "iteration 1 " in r.output and not (run / "model.safetensors").exists()
    # the PSNR stage (a model still learning) is never stopped by it
    r = runner.invoke(app, ["train", str(config), "--set", "train.collapse_db=3",
                            "--out", str(tmp_path / "psnr")])
    assert r.exit_code == 0, r.output
