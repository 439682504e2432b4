"""Throughput of ``facesr upscale`` by engine: local, and Ray with 1 and 2 workers.

    python benchmarks/scale.py --out bench-scale                  # 240 faces, 22 frames
    python benchmarks/scale.py --out bench-scale --faces 60 --frames 6

Two batches, made once in ``OUT/in``: ``--faces`` face crops (``faces_hq``: london512, then
canada512 and alae512, area-downscaled to ``--size`` px: face mode) and ``--frames`` frames
(``data/frames``, their longer side area-downscaled to 320 px, then the same mirrored: frame
mode, detection and a crop per face). Each engine runs the real command on each batch, one CPU
thread per worker (``--threads 1``; the local engine: one process, one thread), with the
default model, into a fresh ``OUT/runs/<engine>-<batch>``:

- ``wall``: the command, start to end (Python start, model load, Ray start and its actors);
- ``batch``: from the first record's time to the last one's (the records' provenance), plus
  one still at the mean pace: the steady state that a long batch is made of;
- throughput: stills per second of ``batch``; ``x local``: its ratio to the local engine's;
- overhead per item: the batch time outside the stills' own timings (``timings_ms.total``),
  per still, of Ray with 1 worker less the local engine's: what handing an item (here one
  still) to an actor and back costs. (A difference of throughputs would be swamped by the
  machine's load: the stills' own times vary more than that between runs.)

Prints a Markdown table and writes ``OUT/results.json``. Needs ``../shared/data`` and Ray
(``pip install -e ".[ray]"``). On a machine whose cores others use, say so beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import cv2

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FACE_SETS = ("london512", "canada512", "alae512")
ENGINES = {"local": [], "ray x1": ["--engine", "ray", "--workers", "1"],
           "ray x2": ["--engine", "ray", "--workers", "2"]}


def _inputs(out: Path, faces: int, frames: int, size: int) -> dict[str, tuple[Path, int]]:
    """The two batches (made once): name -> (folder, stills)."""
    face_dir, frame_dir = out / "in" / "faces", out / "in" / "frames"
    if not face_dir.is_dir() or len(list(face_dir.glob("*.png"))) != faces:
        face_dir.mkdir(parents=True, exist_ok=True)
        for old in face_dir.glob("*.png"):
            old.unlink()
        files = [f for s in FACE_SETS for f in sorted((DATA / "faces_hq" / s).glob("*.*"))
                 if f.suffix.lower() in (".png", ".jpg")]
        if len(files) < faces:
            sys.exit(f"only {len(files)} faces in {DATA / 'faces_hq'}")
        for i, f in enumerate(files[:faces]):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            cv2.imwrite(str(face_dir / f"{i:04d}.png"),
                        cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
    if not frame_dir.is_dir() or len(list(frame_dir.glob("*.png"))) != frames:
        frame_dir.mkdir(parents=True, exist_ok=True)
        for old in frame_dir.glob("*.png"):
            old.unlink()
        srcs = sorted(p for p in (DATA / "frames").iterdir() if p.suffix.lower() in
                      (".jpg", ".jpeg", ".png"))
        for i in range(frames):
            img = cv2.imread(str(srcs[i % len(srcs)]), cv2.IMREAD_COLOR)
            k = 320 / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)),
                             interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(frame_dir / f"{i:03d}.png"),
                        img if i < len(srcs) else img[:, ::-1])
    return {"faces": (face_dir, faces), "frames": (frame_dir, frames)}


def _run(src: Path, dst: Path, extra: list[str]) -> dict:
    """One command; its wall time and the steady batch time from its records."""
    if dst.exists():
        subprocess.run(["rm", "-rf", str(dst)], check=True)
    cmd = [sys.executable, "-m", "facesr", "upscale", str(src), "--out", str(dst),
           "--threads", "1", *extra]
    t0 = time.perf_counter()
    # a session of its own: with the kernel's autogroups, each command (and its Ray workers,
    # which stay in the driver's session) gets the same share of a busy machine
    done = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    recs = [json.loads(p.read_text()) for p in dst.rglob("*.json")]
    times = sorted(datetime.fromisoformat(r["provenance"]["time_utc"].replace("Z", "+00:00"))
                   .timestamp() for r in recs)
    n = len(times)
    span = times[-1] - times[0]
    batch = span + span / max(n - 1, 1)  # the first still's own time, at the mean pace
    own = sum(r["timings_ms"]["total"] for r in recs) / 1000
    return {"stills": n, "wall_s": round(wall, 2), "batch_s": round(batch, 2),
            "per_s": round(n / batch, 2), "gap_ms": round(1000 * (batch - own) / n, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--faces", type=int, default=240)
    ap.add_argument("--frames", type=int, default=22)
    ap.add_argument("--size", type=int, default=40, help="face crop side (px)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs of each, interleaved; the fastest counts (a busy machine)")
    args = ap.parse_args()
    batches = _inputs(args.out, args.faces, args.frames, args.size)
    results: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "runs": {},
                     "all": []}
    for _ in range(args.repeat):
        for engine, extra in ENGINES.items():
            for name, (src, _) in batches.items():
                res = _run(src, args.out / "runs" / f"{engine.replace(' ', '')}-{name}", extra)
                results["all"].append({"engine": engine, "batch": name, **res})
                best = results["runs"].get(f"{engine} {name}")
                if best is None or res["per_s"] > best["per_s"]:
                    results["runs"][f"{engine} {name}"] = res
                print(f"{engine:7s} {name:6s} {res}", file=sys.stderr, flush=True)
    results["load_after"] = os.getloadavg()
    runs = results["runs"]
    print(f"\n{args.faces} faces of {args.size} px, {args.frames} frames of 320 px; one thread "
          f"per worker; best of {args.repeat}; {os.cpu_count()} CPUs, load average before "
          f"{results['load_before'][0]:.1f}, after {results['load_after'][0]:.1f}\n")
    print("| engine | faces: wall s | batch s | faces/s | x local | frames: wall s | batch s "
          "| frames/s | x local |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine in ENGINES:
        row = [engine]
        for name in batches:
            r, base = runs[f"{engine} {name}"], runs[f"local {name}"]
            row += [f"{r['wall_s']:.1f}", f"{r['batch_s']:.1f}", f"{r['per_s']:.2f}",
                    f"{r['per_s'] / base['per_s']:.2f}"]
        print("| " + " | ".join(row) + " |")
    over = {}
    for name in batches:
        r, base = runs[f"ray x1 {name}"], runs[f"local {name}"]
        over[name] = round(r["gap_ms"] - base["gap_ms"], 1)
    results["overhead_ms_per_item"] = over
    print(f"\nRay overhead per item (1 worker, time outside the stills, less the local "
          f"engine's): {over['faces']} ms per face crop ({runs['local faces']['gap_ms']} ms "
          f"locally), {over['frames']} ms per frame ({runs['local frames']['gap_ms']} ms)")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
