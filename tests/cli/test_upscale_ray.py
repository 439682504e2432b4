"""``facesr upscale --engine ray``: the local engine's outputs and records, a worker that dies,
resume across engines, bounded retries, and the one-line message without Ray.

The Ray tests share one cluster of 2 CPUs started for this module (``ray start --head
--block``, token authentication with a token of its own, stopped by its process id); the
command connects to it with ``--address``. Every run uses ``--threads 1``: the same thread
count in both engines, so the images are the same bytes.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facesr.cli import app
from facesr.io import read_image_array, write_image, write_video

runner = CliRunner()
STILLS = 4 + 1 + 12  # the batch: 4 crops, a photo with a face, a 12-frame video (+ a bad file)
SUMMARY = f"{STILLS} images/frames done, 0 skipped, 1 failed"


def _run(*args: object):
    return runner.invoke(app, ["upscale", *map(str, args), "--threads", "1"])


@pytest.fixture(scope="module")
def cluster():
    """The address of a Ray head on this machine (2 CPUs), stopped when the module ends."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs ray (pip install -e '.[ray]')")
    ray_bin = Path(sys.executable).with_name("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's sockets live there
    log = Path(temp) / "head.log"
    with log.open("w") as f:
        head = subprocess.Popen(
            [str(ray_bin), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
             "--disable-usage-stats", "--temp-dir", temp],
            env={**os.environ, **auth}, stdout=f, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in auth}
    # the command (this process) connects with the same token; Ray reads RAY_AUTH_MODE when
    # it is imported, so set it first (and have Ray read it again if it was imported already)
    os.environ.update(auth)
    if "ray" in sys.modules:
        from ray._raylet import Config

        Config.initialize("")
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        head.terminate()  # --block: stops the head's processes with it
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """4 noise crops (face mode), a photo with one face (frame mode), a 12-frame video and a
    truncated PNG (its header reads, its pixels do not: it fails in the worker)."""
    root = tmp_path_factory.mktemp("batch") / "in"
    rng = np.random.default_rng(0)
    for k in range(4):
        write_image(root / "crops" / f"c{k}.png", rng.random((24, 20, 3), dtype=np.float32))
    whole = (root / "crops" / "c0.png").read_bytes()
    (root / "crops" / "bad.png").write_bytes(whole[:len(whole) // 2])
    face = importlib.resources.files("skimage") / "data" / "astronaut.png"
    write_image(root / "photo.png", cv2.resize(read_image_array(str(face)), (200, 200),
                                               interpolation=cv2.INTER_AREA))
    frames = [np.full((24, 32, 3), 20 * k, np.uint8) for k in range(12)]
    write_video(root / "clip.mp4", frames, 6)
    return root


@pytest.fixture(scope="module")
def local(batch, nearest, tmp_path_factory) -> Path:
    """The local engine's folder for ``batch``."""
    out = tmp_path_factory.mktemp("local") / "out"
    r = _run(batch, "--out", out, "--model", nearest)
    assert r.exit_code == 1, r.output
    assert SUMMARY in r.output and "bad.png" in r.output
    return out


@pytest.fixture
def ranges(monkeypatch):
    """Small videos cut into ranges too; the items each run hands out."""
    from facesr.cli.upscale import engine_ray

    monkeypatch.setattr(engine_ray, "MIN_SPAN", 2)
    seen = []
    items = engine_ray._items

    def spy(*args, **kwargs):
        seen.append(items(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(engine_ray, "_items", spy)
    return seen


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def _same_as_local(out: Path, local: Path) -> None:
    """The same files; images byte for byte, records but for timings, host and time."""
    mine, theirs = _files(out), _files(local)
    assert sorted(mine) == sorted(theirs)
    for name, data in mine.items():
        if not name.endswith(".json"):
            assert data == theirs[name], name
            continue
        a, b = json.loads(data), json.loads(theirs[name])
        for rec in (a, b):
            rec.pop("timings_ms")
            rec["provenance"].pop("time_utc")
            rec["provenance"].pop("host")
        assert a == b, name


@pytest.mark.slow  # a Ray worker process per actor
def test_ray_makes_the_local_outputs_and_records(cluster, batch, local, nearest, ranges,
                                                 tmp_path):
    out = tmp_path / "out"
    r = _run(batch, "--out", out, "--model", nearest, "--engine", "ray", "--address", cluster,
             "--workers", "2")
    assert r.exit_code == 1, r.output  # the bad file, reported once; the rest goes on
    assert SUMMARY in r.output
    assert r.output.count("error") == 1 and "bad.png" in r.output
    assert "2 worker(s) of 1 thread(s)" in r.output
    (items,) = ranges
    spans = sorted(it.span for it in items if it.path.name == "clip.mp4")
    assert len(spans) > 1 and spans[0][0] == 0 and spans[-1][1] == 12  # cut into ranges
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    _same_as_local(out, local)
    assert not (out / ".facesr.lock").exists()


@pytest.mark.slow  # a Ray worker process per actor
def test_a_worker_that_dies_has_its_items_finished_elsewhere(cluster, batch, local, nearest,
                                                             ranges, tmp_path, monkeypatch):
    from facesr.cli.upscale import engine_ray

    mark = tmp_path / "died"
    monkeypatch.setenv(engine_ray.EXIT_HOOK, f"1:{mark}")  # the first worker dies after 1 still
    out = tmp_path / "out"
    r = _run(batch, "--out", out, "--model", nearest, "--engine", "ray", "--address", cluster,
             "--workers", "2")
    assert r.exit_code == 1, r.output  # the bad file only
    assert mark.exists()
    # each still once: the one the dead worker recorded is found done, not made again
    assert f"{STILLS - 1} images/frames done, 1 skipped, 1 failed" in r.output
    _same_as_local(out, local)


@pytest.mark.slow  # a Ray worker process per actor
def test_retries_are_bounded(cluster, batch, nearest, tmp_path, monkeypatch):
    from facesr.cli.upscale import engine_ray

    monkeypatch.setenv(engine_ray.EXIT_HOOK, "0")  # every worker dies on its first item
    out = tmp_path / "out"
    r = _run(batch / "crops" / "c0.png", "--out", out, "--model", nearest, "--engine", "ray",
             "--address", cluster, "--workers", "2")
    assert r.exit_code == 1, r.output
    assert f"died on it {engine_ray.TRIES} times" in r.output
    assert "0 images/frames done, 0 skipped, 1 failed" in r.output
    assert not list(out.glob("*.json"))


@pytest.mark.slow  # a Ray worker process per actor
def test_a_killed_ray_run_finishes_locally_without_redoing_anything(cluster, batch, nearest,
                                                                    ranges, tmp_path,
                                                                    monkeypatch):
    from facesr.cli.upscale import engine_ray

    monkeypatch.setattr(engine_ray, "SPANS_PER_WORKER", 1)
    monkeypatch.setattr(engine_ray, "TRIES", 1)
    monkeypatch.setenv(engine_ray.EXIT_HOOK, "1")  # every worker dies after one still
    out = tmp_path / "out"
    srcs = (batch / "crops" / "c1.png", batch / "clip.mp4")
    r = _run(*srcs, "--out", out, "--model", nearest, "--engine", "ray", "--address", cluster,
             "--workers", "2")
    assert r.exit_code == 1, r.output
    (items,) = ranges
    made = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert len(made) == len(items) == 3  # the crop and the first still of each range
    monkeypatch.delenv(engine_ray.EXIT_HOOK)
    r = _run(*srcs, "--out", out, "--model", nearest)
    assert r.exit_code == 0, r.output
    assert f"{13 - 3} images/frames done, 3 skipped, 0 failed" in r.output
    assert len(list(out.glob("*.json"))) == 13
    assert {name: (out / name).read_bytes() for name in made} == made


@pytest.mark.slow  # a Ray worker process per actor
def test_a_local_run_is_finished_by_ray(cluster, batch, nearest, ranges, tmp_path):
    out = tmp_path / "out"
    srcs = (batch / "crops" / "c2.png", batch / "clip.mp4")
    r = _run(*srcs, "--out", out, "--model", nearest, "--max-frames", "5")  # stopped early
    assert r.exit_code == 0, r.output
    made = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert len(made) == 6
    r = _run(*srcs, "--out", out, "--model", nearest, "--engine", "ray", "--address", cluster,
             "--workers", "2")
    assert r.exit_code == 0, r.output
    assert "7 images/frames done, 6 skipped, 0 failed" in r.output
    assert len(list(out.glob("*.json"))) == 13
    assert {name: (out / name).read_bytes() for name in made} == made


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 1001])
@pytest.mark.parametrize("workers", [1, 2, 5])
def test_a_video_is_cut_into_contiguous_ranges(n, workers):
    pytest.importorskip("ray")
    from facesr.cli.upscale.engine_ray import MIN_SPAN, SPANS_PER_WORKER, _items

    items = _items({Path("a.mp4"): n, Path("b.png"): 1}, workers, save_video=False)
    assert items[-1].path == Path("b.png") and items[-1].span is None
    video = items[:-1]
    if n < 2 * MIN_SPAN:
        assert [(it.n, it.span) for it in video] == [(n, None)]
        return
    edges = [it.span for it in video]
    assert edges[0][0] == 0 and edges[-1][1] == n and sum(it.n for it in video) == n
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:], strict=False))
    assert all(it.n >= MIN_SPAN for it in video)
    assert 1 < len(video) <= SPANS_PER_WORKER * workers
    # --save-video: the MP4 needs every x4 frame, so the video goes whole to one worker
    assert [it.span for it in _items({Path("a.mp4"): n}, workers, save_video=True)] == [None]


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, monkeypatch, nearest):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.delitem(sys.modules, "facesr.cli.upscale.engine_ray", raising=False)
    monkeypatch.delattr("facesr.cli.upscale.engine_ray", raising=False)  # imported again
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.float32))
    r = _run(tmp_path / "a.png", "--out", tmp_path / "out", "--model", nearest, "--engine",
             "ray")
    assert r.exit_code == 2
    assert r.output.strip() == ('--engine ray needs Ray: pip install -e ".[ray]" (or pip install '
                                '"ray>=2.40")')
    assert not (tmp_path / "out").exists()


def test_ray_options_need_the_ray_engine(tmp_path, nearest):
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.float32))
    r = _run(tmp_path / "a.png", "--out", tmp_path / "out", "--workers", "2")
    assert r.exit_code == 2 and "needs --engine ray" in r.output
