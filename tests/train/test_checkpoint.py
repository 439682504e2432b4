"""Checkpoints: safetensors with the config in metadata, written atomically, pruned, checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open

import facesr.train.checkpoint as checkpoint_module
from facesr.degrade.degradation import Pools
from facesr.models import load_rrdb
from facesr.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from facesr.train.config import TrainConfig, config_from_yaml
from facesr.train.loop import train

Tiny = Callable[..., TrainConfig]


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_checkpoint_files_and_metadata(tiny: Tiny, pools: Pools, tmp_path: Path) -> None:
    cfg = tiny("train.stage=gan", "train.iterations=4", "train.keep_checkpoints=1")
    run = tmp_path / "run"
    train(cfg, run, pools=pools)
    assert config_from_yaml((run / "config.yaml").read_text()) == cfg
    ckpt = latest_checkpoint(run)
    assert ckpt == run / "ckpt" / "000000004"
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["000000004"]  # pruned to 1
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "D.safetensors", "G.safetensors", "G_ema.safetensors", "state.pt"]
    for name in ("G", "G_ema", "D", "../../model"):
        meta = _meta(ckpt / f"{name}.safetensors")
        assert config_from_yaml(meta["config"]) == cfg
        assert (meta["stage"], meta["iteration"], meta["version"]) == ("gan", "4", "1")
        assert meta["format"] == ("facesr.patchgan" if name == "D" else "facesr.rrdb")
    g = load_rrdb(ckpt / "G.safetensors")  # also loads in tools that read BasicSR names
    assert g.arch() == {"in_ch": 3, "out_ch": 3, "num_feat": 8, "num_block": 1,
                        "num_grow_ch": 4, "scale": 4}
    assert "body.0.rdb1.conv1.weight" in g.state_dict()
    loaded = load_checkpoint(ckpt)  # state.pt: torch.load(weights_only=True), no pickle code
    assert loaded.iteration == 4 and loaded.d is not None
    assert set(loaded.state) >= {"opt_g", "opt_d", "rng", "data", "config", "stage"}
    assert loaded.state["data"]["items"] == 4 * cfg.train.batch
    pointer = json.loads((run / "latest.json").read_text())
    assert pointer["checkpoint"] == "ckpt/000000004"
    assert pointer["files"] == {p.name: p.stat().st_size for p in ckpt.iterdir()}
    # nothing half-written is left behind
    assert not [p for p in run.rglob("*") if p.name.startswith(".")]


def test_the_pointer_only_ever_names_a_complete_checkpoint(
        tiny: Tiny, pools: Pools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = checkpoint_module.atomic_write_text
    seen = []

    def write_text(path: Path, text: str) -> Path:
        info = json.loads(text)
        folder = Path(path).parent / info["checkpoint"]
        # the folder is in place, complete, under its final name, before the pointer moves
        assert {p.name: p.stat().st_size for p in folder.iterdir()} == info["files"]
        assert len(info["files"]) == 3  # G, G_ema, state
        seen.append(info["iteration"])
        return real(path, text)

    monkeypatch.setattr(checkpoint_module, "atomic_write_text", write_text)
    train(tiny("train.iterations=5"), tmp_path / "run", pools=pools)
    assert seen == [2, 4, 5]


def test_a_modified_checkpoint_is_refused(tiny: Tiny, pools: Pools, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tiny("train.iterations=2")
    train(cfg, run, pools=pools)
    g = run / "ckpt" / "000000002" / "G.safetensors"
    g.write_bytes(g.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="not the size latest.json records"):
        train(cfg, run, pools=pools, resume=True)
    (run / "latest.json").write_text("{", encoding="utf-8")
    with pytest.raises(CheckpointError, match="unreadable"):
        latest_checkpoint(run)


def test_resume_checks_the_training_set(tiny: Tiny, pools: Pools, tmp_path: Path,
                                        faces_dir: Path) -> None:
    run = tmp_path / "run"
    train(tiny("train.iterations=2"), run, pools=pools)
    (faces_dir / "face0.png").rename(faces_dir / "face0.txt")  # one training file fewer
    # either check may fire first: the held-out list or the item count no longer match
    with pytest.raises(ValueError, match="the data stream cannot continue|held-out"):
        train(tiny("train.iterations=4"), run, pools=pools, resume=True)
