"""Ctrl-C (SIGINT) or SIGTERM: the run finishes its iteration, checkpoints it and exits."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.degrade.degradation import Pools
from facesr.train.config import TrainConfig
from facesr.train.loop import Interrupted, train

Tiny = Callable[..., TrainConfig]


def _iteration(run: Path) -> int:
    return json.loads((run / "latest.json").read_text())["iteration"]


def test_sigint_checkpoints_the_current_iteration_then_resume(
        tiny: Tiny, pool_files: tuple[Path, Path], tmp_path: Path, start_training: Callable,
        wait_until: Callable) -> None:
    """A real ``facesr train`` process gets SIGINT mid-run, exits 130, then is resumed."""
    kernels, noise = pool_files
    cfg = tiny("train.iterations=1000", "train.checkpoint_every=500", "train.val_every=1000",
               "train.log_every=1", f"data.kernels={kernels}", f"data.noise={noise}")
    run = tmp_path / "run"
    metrics = run / "metrics.jsonl"
    proc = start_training(cfg, tmp_path / "exp.yaml", run)
    try:
        wait_until(proc, lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3,
                   "no 3 iterations", poll=0.01)
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    message = stderr.decode()
    assert proc.returncode == 130, message
    assert "Traceback" not in message
    assert f"facesr train --resume {run}" in message
    at = _iteration(run)
    assert 3 <= at < 500 and at % 500 != 0
    logged = [json.loads(line)["iter"] for line in metrics.read_text().splitlines()]
    assert logged[-1] == at  # the iteration in progress was finished, then checkpointed
    assert not (run / "model.safetensors").exists()

    end = at + 2
    r = CliRunner().invoke(app, ["train", "--resume", str(run),
                                 "--set", f"train.iterations={end}"])
    assert r.exit_code == 0, r.output
    assert f"iteration {end}" in r.output and _iteration(run) == end
    assert (run / "model.safetensors").exists()


def test_sigterm_in_process_and_a_second_signal_is_ignored(
        tiny: Tiny, pools: Pools, tmp_path: Path) -> None:
    cfg = tiny("train.iterations=8", "train.checkpoint_every=100", "train.val_every=100",
               "train.keep_checkpoints=1")

    def on_step(done: int, total: int, logged: dict | None) -> None:
        if done == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # while stopping: no KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    with pytest.raises(Interrupted) as e:
        train(cfg, run, pools=pools, on_step=on_step)
    assert (e.value.iteration, e.value.exit_code) == (3, 143)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert _iteration(run) == 3
    assert [p.name for p in (run / "ckpt").iterdir()] == ["000000003"]
    assert train(cfg, run, resume=True, pools=pools)["iteration"] == 8
