"""What the page shows of an output folder, read from the records ``facesr upscale`` writes
(``<base>.json`` per still; see ``facesr.cli.upscale.command``): each still with its faces
(box, detection score, x4 output and the ``--save-lr`` crop), its whole frame and, for a video
frame, its timecode; the history of runs (records grouped by the command line that made them);
and the zip of records with their outputs.

Only plain files inside the output folder are read (no link is followed out of it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path


class Records:
    """The records of one output folder, re-read only when a file changes."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._cache: dict[Path, tuple[tuple[int, int], dict | None]] = {}

    def _files(self) -> Iterable[Path]:
        for dirpath, dirnames, filenames in os.walk(self.out_dir):  # links not followed
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and not (Path(dirpath) / d).is_symlink())
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if (name.endswith(".json") and not name.endswith(".mp4.json")
                        and not name.startswith(".") and not p.is_symlink()):
                    yield p

    def all(self) -> list[tuple[Path, dict]]:
        """(record path, record) of every still record, in path order."""
        found = []
        seen = set()
        for p in self._files():
            seen.add(p)
            try:
                st = p.stat()
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(p)
            if cached is None or cached[0] != key:
                try:
                    rec = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, ValueError):
                    rec = None
                if not (isinstance(rec, dict) and isinstance(rec.get("input"), dict)
                        and isinstance(rec.get("outputs"), list)):
                    rec = None
                self._cache[p] = cached = (key, rec)
            if cached[1] is not None:
                found.append((p, cached[1]))
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return found

    def rel(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def of_inputs(self, paths: set[str], digests: set[str]) -> list[tuple[Path, dict]]:
        """Records of these input files (by resolved path, or by content: SHA-256)."""
        return [(p, r) for p, r in self.all() if r["input"].get("path") in paths
                or r["input"].get("sha256") in digests]

    def runs(self) -> list[dict]:
        """The history: one entry per command line that wrote records here, newest first."""
        groups: dict[str, dict] = {}
        for _, r in self.all():
            prov = r.get("provenance") if isinstance(r.get("provenance"), dict) else {}
            argv = prov.get("argv") or []
            key = run_key(argv)
            t = str(prov.get("time_utc", ""))
            g = groups.setdefault(key, {"run": key, "command": _command(argv), "first": t,
                                        "last": t, "stills": 0, "faces": 0,
                                        "model": (r.get("model") or {}).get("name")})
            g["first"], g["last"] = min(g["first"], t), max(g["last"], t)
            g["stills"] += 1
            g["faces"] += 1 if r.get("mode") == "face" else len(r.get("faces") or [])
        return sorted(groups.values(), key=lambda g: g["last"], reverse=True)

    def of_run(self, key: str) -> list[tuple[Path, dict]]:
        return [(p, r) for p, r in self.all()
                if run_key((r.get("provenance") or {}).get("argv") or []) == key]

    def view(self, found: list[tuple[Path, dict]]) -> list[dict]:
        """The stills as the page shows them."""
        return [still_view(self.rel(p), r) for p, r in found]

    def zip(self, found: list[tuple[Path, dict]]) -> bytes:
        """A zip of these records and every output they list, at their paths in the folder."""
        buf = io.BytesIO()
        root = self.out_dir.resolve()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p, r in found:
                z.write(p, self.rel(p))
                for o in r["outputs"]:
                    name = str(o.get("file", ""))
                    f = p.parent / name
                    if (name and Path(name).name == name and f.is_file()
                            and not f.is_symlink() and root in f.resolve().parents):
                        z.write(f, self.rel(f))
        return buf.getvalue()


def run_key(argv: list) -> str:
    """A short id of a command line: the records one run wrote share it."""
    return hashlib.sha1(json.dumps(argv).encode()).hexdigest()[:12]


def _command(argv: list) -> str:
    words = [str(a) for a in argv]
    if words[1:3] == ["-m", "facesr"]:  # an app job: python -m facesr upscale ...
        return " ".join(["facesr", *words[3:]])
    if words and Path(words[0]).name in ("facesr", "__main__.py"):
        words[0] = "facesr"
    return " ".join(words)


def still_view(rel: str, rec: dict) -> dict:
    """One record for the page: its input, mode, faces (with their x4 and LR crops), frame."""
    folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    stem = rel.rsplit("/", 1)[-1][:-len(".json")]
    outs = {str(o.get("file")): o for o in rec["outputs"] if isinstance(o, dict)}
    inp = rec["input"]
    size = inp.get("shrunk_to") or inp.get("size")
    faces = []
    if rec.get("mode") == "face":
        image = next((n for n, o in outs.items() if o.get("kind") == "image"), None)
        lr = f"{stem}_lr.png"
        faces.append({"output": folder + image if image else None,
                      "lr": folder + lr if lr in outs else None, "score": None, "box": None})
    else:
        for k, f in enumerate(rec.get("faces") or []):
            lr = f"{stem}_face{k}_lr.png"
            out = f.get("output")
            faces.append({"output": folder + out if out in outs else None,
                          "lr": folder + lr if lr in outs else None, "score": f.get("score"),
                          "box": f.get("box"), "crop_box": f.get("crop_box")})
    frame = next((n for n, o in outs.items() if o.get("kind") == "frame"), None)
    return {"record": rel, "input": Path(str(inp.get("path", ""))).name,
            "frame_index": inp.get("frame"), "timecode": inp.get("timecode"), "size": size,
            "mode": rec.get("mode"), "mode_reason": rec.get("mode_reason"),
            "model": (rec.get("model") or {}).get("name"), "faces": faces,
            "frame": folder + frame if frame else None,
            "frame_size": outs[frame].get("size") if frame else None,
            "notice": rec.get("notice"), "time": (rec.get("provenance") or {}).get("time_utc"),
            "outputs": [folder + n for n in outs]}
