"""A still's record and resuming from it: the settings one input's records hold, the record
written last (a still with a record is done), and the rules by which a re-run skips a done
still, redoes it (``--overwrite``) or fails its input (another model or setting).

Older output folders, whose names were ``<stem>_<hash>`` for every input (all in ``DIR``), are
still recognised: a still whose new record is absent but whose old one is there counts as done
(the same resume rules; its files keep their old names), and ``--overwrite`` removes the old
record and files and writes the new names. A settings field a record lacks (made before the
field existed) counts as the value that reproduces those outputs (``_ADDED``). An old MP4 of
``--save-video`` is not reused: it is made again under the new name.
"""

from __future__ import annotations

import json
from pathlib import Path

from facesr.cli.upscale.still import _remove, _WriteError
from facesr.infer.pipeline import NOTICE
from facesr.io import InputError, atomic_write_text
from facesr.provenance import record_provenance

# settings that never change a still's outputs: speed, and which stills a run makes (``ext``:
# what was asked; ``format``, the format each input got, is the one that counts)
_NEUTRAL = frozenset({"threads", "stride", "max_frames", "save_video", "ext"})
_DETECTION = frozenset({"detector", "detector_weights", "min_size", "score_threshold"})
# only shape frame mode's outputs
_FRAME = frozenset({"margin", "background", "save_frame", "only_center_face"})
# settings added after records were first written, with the value that makes the outputs an
# older facesr made (a record without the field counts as made with it)
_ADDED = {"outscale": 4.0, "suffix": "x4", "max_side": None, "only_center_face": False,
          "save_lr": False, "compare": False, "fuse": 1}


def _input_settings(settings: dict, video: bool, save_frame: bool | None) -> dict:
    """One input's settings as its records hold them. --save-frame not given: on for images;
    for video frames ``"faces"`` (the whole x4 frame only where a face was found), or off
    with --save-video (the x4 frames go into the MP4)."""
    if not video:  # --fuse works on video frames only
        return {**settings, "fuse": 1}
    if save_frame is not None:
        return settings
    return {**settings, "save_frame": False if settings["save_video"] else "faces"}


def _as_made(rec_path: Path, settings: dict) -> dict:
    """``settings`` with the --save-frame default a video still done earlier was made with
    (when --save-frame is not given): adding or dropping --save-video, which changes that
    default, neither redoes nor fails the stills already done."""
    try:
        made = json.loads(rec_path.read_text(encoding="utf-8"))["settings"]["save_frame"]
    except (OSError, ValueError, KeyError, TypeError):
        return settings
    return {**settings, "save_frame": made} if made in (True, False, "faces") else settings


def _done(rec_path: Path, overwrite: bool, model_rec: dict, settings: dict) -> bool:
    """True if the still of this record is done with the same model and settings (skip it).

    With ``overwrite`` the outputs the old record lists are deleted and False is returned.
    Raises InputError when the record is unreadable, or made with another model or another
    value of any setting that can change the outputs (see ``_changes``).
    """
    if not rec_path.exists():
        return False
    try:
        old = json.loads(rec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        old = None
    if overwrite:
        for o in old.get("outputs", []) if isinstance(old, dict) else []:
            name = str(o.get("file", ""))
            if name and Path(name).name == name:  # only plain names inside --out
                (rec_path.parent / name).unlink(missing_ok=True)
        return False
    if not isinstance(old, dict):
        raise InputError(rec_path, "unreadable record; pass --overwrite to redo this input")
    changes = _changes(old, model_rec, settings)
    if changes:
        raise InputError(rec_path, "made with another model or settings; pass --overwrite "
                         f"or use another --out ({', '.join(changes)})")
    return True


def _changes(old: dict, model_rec: dict, settings: dict) -> list[str]:
    """What differs between a record and this run, in a way that can change its outputs.

    Every setting the record holds counts (so one added later counts too; one the record
    lacks counts as its ``_ADDED`` value, which made the outputs of the facesr that wrote it),
    except the ``_NEUTRAL`` ones, detection ones when --mode face asks for none, and
    frame-mode ones when the still was made in face mode.
    """
    def shown(value: object) -> str:
        return "default" if value is None else str(value)

    was_model = old.get("model") if isinstance(old.get("model"), dict) else {}
    was = old.get("settings") if isinstance(old.get("settings"), dict) else {}
    was = {**_ADDED, **was}  # made before a setting existed: made with its old behaviour
    changes = [] if was_model.get("sha256") == model_rec["sha256"] else [
        f"model {shown(was_model.get('name'))} -> {model_rec.get('name')}"]
    ignore = _NEUTRAL | (_DETECTION if settings["mode"] == "face" else frozenset()) | (
        _FRAME if old.get("mode") == "face" else frozenset())
    for key in sorted((set(was) | set(settings)) - ignore):
        if was.get(key) != settings.get(key):
            changes.append(f"{key} {shown(was.get(key))} -> {shown(settings.get(key))}")
    return changes


def _write_record(rec_path: Path, rec: dict, out_dir: Path) -> None:
    """Write a still's record last, with its ``provenance`` (facesr version and commit, command
    line, library versions, UTC time: ``facesr.provenance``) after the notice; when that fails,
    remove its images too (all or nothing)."""
    rec = {"notice": rec.get("notice", NOTICE), "provenance": record_provenance(), **rec}
    try:
        atomic_write_text(rec_path, json.dumps(rec, indent=2) + "\n")
    except OSError as e:
        _remove(out_dir, [o["file"] for o in rec["outputs"]])
        raise _WriteError(rec_path, e) from None
