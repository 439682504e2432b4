"""Interrupt a run anywhere (an exception, a crash inside a checkpoint write, kill -9) and
``--resume`` it: on CPU the result equals the uninterrupted run's, bit for bit."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import facesr.train.checkpoint as checkpoint_module
from facesr.data.dedup import near_duplicate_groups
from facesr.degrade.degradation import Pools
from facesr.io import read_image_array, write_image
from facesr.train.config import ConfigError, TrainConfig
from facesr.train.data import split_files
from facesr.train.loop import train

Tiny = Callable[..., TrainConfig]


class Crash(Exception):
    """Stands in for the process dying: nothing after it runs, nothing cleans up."""


def _crash_after(iteration: int) -> Callable:
    def on_step(done: int, total: int, logged: dict | None) -> None:
        if done == iteration:
            raise Crash(f"killed after iteration {done}")

    return on_step


def _final_state(run: Path, iteration: int) -> dict[str, torch.Tensor]:
    """Every tensor of the run's result: weights, EMA, D, and the optimizer states."""
    ckpt = run / "ckpt" / f"{iteration:09d}"
    out = {f"model/{k}": v for k, v in load_file(run / "model.safetensors").items()}
    for f in sorted(ckpt.glob("*.safetensors")):
        out |= {f"{f.stem}/{k}": v for k, v in load_file(f).items()}
    state = torch.load(ckpt / "state.pt", weights_only=True)
    for name in ("opt_g", "opt_d"):
        if state[name] is not None:
            for p, s in state[name]["state"].items():
                out |= {f"{name}/{p}/{k}": v for k, v in s.items()}
    return out


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


@pytest.mark.parametrize("stage", ["psnr", "gan"])
def test_resume_after_interruption_is_bit_for_bit(tiny: Tiny, pools: Pools, tmp_path: Path,
                                                  stage: str) -> None:
    cfg = tiny(f"train.stage={stage}", "loss.l_lpips=0.01")
    train(cfg, tmp_path / "whole", pools=pools)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "cut", pools=pools, on_step=_crash_after(5))
    assert json.loads((tmp_path / "cut" / "latest.json").read_text())["iteration"] == 4
    result = train(cfg, tmp_path / "cut", pools=pools, resume=True)
    assert result["iteration"] == 8
    _assert_same(_final_state(tmp_path / "whole", 8), _final_state(tmp_path / "cut", 8))
    # the log holds each iteration once: iteration 5, lost with the crash, was logged again
    iters = [json.loads(line)["iter"] for line in
             (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert iters == [1, 2, 3, 4, 4, 5, 6, 7, 8, 8]  # validation: a 2nd record at 4, 8


@pytest.mark.parametrize("where", ["writing files", "before the pointer"])
def test_a_crash_inside_a_checkpoint_write_loses_only_that_checkpoint(
        tiny: Tiny, pools: Pools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        where: str) -> None:
    cfg = tiny()
    train(cfg, tmp_path / "whole", pools=pools)
    real_save, real_write = checkpoint_module.save_file, checkpoint_module.atomic_write_text

    def save_file(tensors: dict, path: str, metadata: dict) -> None:
        if where == "writing files" and "/.tmp-000000006-" in path and "G_ema" in path:
            Path(path).write_bytes(b"half a file")
            raise Crash("killed while writing G_ema.safetensors")
        real_save(tensors, path, metadata=metadata)

    def write_text(path: Path, text: str) -> Path:
        if where == "before the pointer" and json.loads(text)["iteration"] == 6:
            raise Crash("killed after renaming checkpoint 6, before pointing at it")
        return real_write(path, text)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)
    monkeypatch.setattr(checkpoint_module, "atomic_write_text", write_text)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "cut", pools=pools)
    monkeypatch.undo()
    run = tmp_path / "cut"
    assert json.loads((run / "latest.json").read_text())["iteration"] == 4
    left = sorted(p.name for p in (run / "ckpt").iterdir())
    unused = "000000006" if where == "before the pointer" else f".tmp-000000006-{os.getpid()}"
    assert left == [unused, "000000002", "000000004"] or left == [
        "000000002", "000000004", unused]
    train(cfg, run, pools=pools, resume=True)
    assert not [p for p in (run / "ckpt").iterdir() if p.name.startswith(".tmp-")]
    _assert_same(_final_state(tmp_path / "whole", 8), _final_state(run, 8))


def test_kill_9_at_any_moment_then_resume(tiny: Tiny, pool_files: tuple[Path, Path],
                                          tmp_path: Path, start_training: Callable,
                                          wait_until: Callable) -> None:
    """A real ``facesr train`` process is killed with SIGKILL mid-run, then resumed."""
    kernels, noise = pool_files
    cfg = tiny("train.iterations=40", "train.checkpoint_every=4", "train.val_every=1000",
               "train.log_every=5", f"data.kernels={kernels}", f"data.noise={noise}")
    run = tmp_path / "cut"
    proc = start_training(cfg, tmp_path / "exp.yaml", run)
    try:
        wait_until(proc, (run / "latest.json").exists, "no checkpoint")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads((run / "latest.json").read_text())["iteration"]
    assert killed_at < 40 and not (run / "model.safetensors").exists()

    assert train(cfg, run, resume=True)["iteration"] == 40  # pools from the same files
    train(cfg, tmp_path / "whole")
    _assert_same(_final_state(tmp_path / "whole", 40), _final_state(run, 40))


def test_near_duplicates_share_a_side_and_a_changed_split_stops_a_resume(
        tiny: Tiny, pools: Pools, faces_dir: Path, tmp_path: Path) -> None:
    img = read_image_array(faces_dir / "face0.png")
    copies = [write_image(faces_dir / f"face0-q90-{k}.jpg", img, jpeg_quality=90 - k)
              for k in range(3)]
    files = sorted(faces_dir.iterdir())
    groups = near_duplicate_groups(files)
    assert groups == [sorted([faces_dir / "face0.png", *copies], key=str)]
    seed = next(s for s in range(20) if split_files(files, 0.3, s)
                != split_files(files, 0.3, s, groups=groups))  # the groups change the split
    cfg = tiny("train.iterations=2", "data.val_fraction=0.3", f"data.val_seed={seed}")
    train(cfg, tmp_path / "run", pools=pools)
    held = set((tmp_path / "run" / "heldout.txt").read_text(encoding="utf-8").splitlines())
    assert set(map(str, groups[0])) <= held or not set(map(str, groups[0])) & held
    per_file = tiny("train.iterations=4", "data.val_fraction=0.3", f"data.val_seed={seed}",
                    "data.val_group_near_duplicates=false")
    with pytest.raises(ConfigError, match="held-out files are not those the run began with"):
        train(per_file, tmp_path / "run", pools=pools, resume=True)
