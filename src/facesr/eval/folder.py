"""The output folder of ``facesr evaluate``: which earlier results can be reused, and one
image's work (inputs written, each missing method run, scored and recorded).

Unlike the rest of :mod:`facesr.eval`, this module writes files: images under
``OUT/images/`` and lines appended to ``OUT/records.jsonl`` (layout:
:mod:`facesr.cli.evaluate`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from facesr.degrade.jpeg import quantize8
from facesr.eval.records import identity_conflicts, index_records, settings_diff
from facesr.io import InputError, append_jsonl, read_image, read_jsonl, sha256_file, write_image

# prepare(image, name) -> (lr, hr or None, extra fields for the input record)
Prepare = Callable[..., tuple]


class FolderConflict(ValueError):
    """The output folder holds results made with other settings or models."""


def versions() -> dict:
    """Versions of facesr, Python and the libraries that shape the numbers (the ones every
    upscale record holds: :mod:`facesr.provenance`)."""
    from facesr.provenance import facesr_version, library_versions

    return {"facesr": facesr_version(), **library_versions()}


def history(run_file: Path) -> list:
    """Earlier runs into the same folder (each: start, duration, methods, image counts)."""
    try:
        old = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    hist = old.get("history") if isinstance(old, dict) else None
    return hist if isinstance(hist, list) else []


def reusable_records(out_dir: Path, settings: dict, meths: list, overwrite: bool) -> list[dict]:
    """The reusable records of ``out_dir``; ``overwrite`` deletes all earlier results and their
    images instead.

    Raises:
        FolderConflict: results made with other settings or models are there (never mixed).
    """
    run_file, rec_file = out_dir / "run.json", out_dir / "records.jsonl"
    records = read_jsonl(rec_file)
    if overwrite:
        images = (out_dir / "images").resolve()
        for r in records:
            folders = [r.get("method")] if r.get("type") == "result" else ["lr", "hr"]
            for folder in folders:
                p = (images / str(folder) / f"{r.get('image')}.png").resolve()
                if images in p.parents:
                    p.unlink(missing_ok=True)
        rec_file.unlink(missing_ok=True)
        return []
    problems = []
    if run_file.exists():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8")).get("settings", {})
        except (OSError, ValueError, AttributeError):
            old = {"run.json": "unreadable"}
        diff = settings_diff(old, json.loads(json.dumps(settings)))
        if diff:
            problems.append(f"other settings (changed: {', '.join(diff)})")
    elif records:
        problems.append("unknown settings (records.jsonl without run.json)")
    _, results = index_records(records)
    conflicts = identity_conflicts(results.values(), {m.name: m.identity for m in meths})
    if conflicts:
        problems.append("other models under the same names (" + "; ".join(conflicts) + ")")
    if problems:
        raise FolderConflict(f"{out_dir} holds results made with {' and '.join(problems)}; "
                             "pass --overwrite to discard them, or choose another --out "
                             "(nothing was changed)")
    return records


def evaluate_image(path: Path, name: str, meths: list, scorers, prepare: Prepare,
                   inputs: dict, results: dict, out_dir: Path) -> str:
    """Compute what is missing for one image: ``"skipped"``, ``"done"`` or the failures.

    Raises:
        InputError: unreadable, or changed since its recorded results (kept out of the tables).
    """
    rec_file, img_dir = out_dir / "records.jsonl", out_dir / "images"
    todo = [m for m in meths if (name, m.name) not in results
            or not (img_dir / m.name / f"{name}.png").is_file()]
    digest = sha256_file(path) if path.is_file() else None
    old = inputs.get(name)
    if old is not None and old.get("sha256") != digest:
        raise InputError(path, f"changed since its results in {out_dir} were recorded; pass "
                         "--overwrite or use another --out")
    if old is not None and not todo:
        return "skipped"
    lr, hr, more = prepare(read_image(path), name)
    for folder, img in (("lr", lr), ("hr", hr)):
        if img is not None and (old is None or not (img_dir / folder / f"{name}.png").is_file()):
            write_image(img_dir / folder / f"{name}.png", img)
    if old is None:
        inputs[name] = {"type": "input", "image": name, "source": str(path), "sha256": digest,
                        "lr_size": list(lr.shape[-2:]), **more}
        append_jsonl(rec_file, inputs[name])
    failures = []
    for m in todo:
        t0 = time.perf_counter()
        try:
            sr = quantize8(m.run(lr))  # scored as saved: 8 bits
        except (RuntimeError, ValueError) as e:  # e.g. out of memory: the other methods go on
            first = (str(e).strip().splitlines() or [""])[0]
            failures.append(f"{m.name} failed ({type(e).__name__}: {first})")
            continue
        secs = time.perf_counter() - t0
        write_image(img_dir / m.name / f"{name}.png", sr)
        scores, notes = scorers.score(sr, hr)
        results[(name, m.name)] = {"type": "result", "image": name, "method": m.name,
                                   "identity": m.identity, "scores": scores, "notes": notes,
                                   "seconds": round(secs, 4)}
        append_jsonl(rec_file, results[(name, m.name)])
    return "; ".join(failures) or "done"
