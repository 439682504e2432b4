"""`facesr app` against `facesr upscale`: the same work, side by side.

    OMP_NUM_THREADS=1 python benchmarks/app.py                 # 4 face crops + 1 frame, 3 runs
    OMP_NUM_THREADS=1 python benchmarks/app.py --faces 8 --repeats 5

The work: ``--faces`` low-quality face crops (``../shared/data/faces_lq`` reduced to 32x32 by
area resampling; without ../shared, the demo's 48x48 face) and one frame with faces
(``../shared/data/frames/codeformer_00.jpg``, 491x310, 4 faces; without ../shared, the
public-domain ``astronaut`` on a 480x300 canvas), model ``facesr-default``, ``--save-lr``.

- CLI: ``python -m facesr upscale FILES -o OUT --save-lr -n facesr-default``, wall time of
  the process (what a user waits for at the terminal).
- app: a ``facesr app --no-browser`` server (started before timing: an analyst keeps it
  open; up during the CLI's run too), then per run: the upload of the same files over HTTP
  (POST /api/jobs, which checks each file by decoding it) until the job reports done, into a
  fresh output folder each time (the request waits on the server for the job's end: no
  polling).

Prints the median, minimum and every run of each, the ratio app / CLI (target: at most 1.10),
and the app's own time beyond the command's process (upload, checks, noticing the end), which
the load of other jobs on a shared machine does not blur.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facesr.io import read_image_array, write_image

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MODEL = "facesr-default"


def inputs(folder: Path, faces: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    lq = sorted((SHARED / "data" / "faces_lq").rglob("*.*"))
    for k in range(faces):
        p = folder / f"face{k}.png"
        if lq:
            img = cv2.imread(str(lq[k % len(lq)]))
            cv2.imwrite(str(p), cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA))
        else:
            from facesr.demo import demo_lr

            write_image(p, demo_lr(seed=k)[1])
        made.append(p)
    frame = SHARED / "data" / "frames" / "codeformer_00.jpg"
    if frame.is_file():
        shutil.copy(frame, folder / "frame.jpg")
        made.append(folder / "frame.jpg")
    else:
        img = read_image_array(str(importlib.resources.files("skimage") / "data"
                                   / "astronaut.png"))
        canvas = np.zeros((300, 480, 3), np.float32)
        canvas[:] = 0.4
        canvas[60:260, 200:400] = cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA)
        write_image(folder / "frame.png", canvas)
        made.append(folder / "frame.png")
    return made


def run_cli(files: list[Path], out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facesr", "upscale", *map(str, files), "-o",
                    str(out), "--save-lr", "-n", MODEL], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


class App:
    """A `facesr app` server on one output folder; ``run`` uploads and waits."""

    def __init__(self, out: Path, uploads: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "facesr", "app", "--no-browser",
                                      "-o", str(out), "--uploads", str(uploads)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline()
        base, token = line.split(": ", 1)[1].strip().split("/?token=")
        import httpx

        self.http = httpx.Client(base_url=base, headers={"X-Facesr-Token": token},
                                 timeout=600)
        self.http.get("/api/info").raise_for_status()  # up and answering

    def run(self, files: list[Path]) -> tuple[float, float, float]:
        """(seconds from the upload to the page seeing the job done, of them the upload with
        its checks, and the `facesr upscale` process)."""
        t0 = time.perf_counter()
        r = self.http.post("/api/jobs", data={"model": MODEL}, files=[
            ("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in files])
        r.raise_for_status()
        upload = time.perf_counter() - t0
        job = r.json()["job"]["id"]
        while (state := self.http.get(f"/api/jobs/{job}", params={"wait": 60}).json())[
                "state"] == "running":
            pass  # the server answers when the job ends (no polling load on the machine)
        took = time.perf_counter() - t0
        assert state["state"] == "done", state
        return took, upload, state["finished"] - state["started"]

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = inputs(tmp / "in", args.faces)
        print(f"work: {len(files) - 1} face crops + 1 frame ({files[-1].name}), model {MODEL}, "
              f"--save-lr; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        cli, app_t, parts = [], [], []
        for k in range(args.repeats):
            # a server per repeat (its own output folder), up during both runs; which one goes
            # first alternates, so that the load of other jobs on the machine hits both alike
            server = App(tmp / f"app{k}", tmp / f"uploads{k}")
            try:
                if k % 2:
                    took, upload, proc = server.run(files)
                cli.append(run_cli(files, tmp / f"cli{k}"))
                if not k % 2:
                    took, upload, proc = server.run(files)
            finally:
                server.close()
            app_t.append(took)
            parts.append((upload, proc, took - upload - proc))
            same = sorted(p.name for p in (tmp / f"cli{k}").iterdir()) == sorted(
                p.name for p in (tmp / f"app{k}").iterdir())
            assert same, "the app and the CLI wrote different files"
        med = statistics.median
        c, a = med(cli), med(app_t)
        print(f"CLI  (facesr upscale)  median {c:6.2f} s  min {min(cli):6.2f} s  runs: "
              + ", ".join(f"{t:.2f}" for t in cli))
        print(f"app  (upload -> done)  median {a:6.2f} s  min {min(app_t):6.2f} s  runs: "
              + ", ".join(f"{t:.2f}" for t in app_t))
        print(f"app, median parts: upload + checks {med(p[0] for p in parts):.2f} s, "
              f"facesr upscale process {med(p[1] for p in parts):.2f} s, until the page "
              f"sees it done {med(p[2] for p in parts):.2f} s")
        print(f"app / CLI = {a / c:.3f} by medians, {min(app_t) / min(cli):.3f} by minimums "
              "(target <= 1.10)")
        extra = med(p[0] + p[2] for p in parts)
        print(f"the app's own time beyond its facesr upscale process: {extra:.2f} s, "
              f"{100 * extra / c:.1f}% of the CLI's median (on a busy machine the process "
              "times of both vary far more than this)")

if __name__ == "__main__":
    main()
