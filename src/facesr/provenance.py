"""Who, what and when made an output: the chain-of-custody facts of ``facesr upscale``.

Every upscale record has a ``provenance`` section (:func:`record_provenance`): the facesr
version, the git commit (and whether the checkout had uncommitted changes) when facesr runs
from a git checkout, the command line, the working folder, a UTC time stamp, the host and the
versions of Python, PyTorch, OpenCV, onnxruntime, NumPy and Pillow.

Every image that upscale writes carries :func:`image_metadata` (PNG text chunks, JPEG COM
segment, TIFF ImageDescription; see :mod:`facesr.imagemeta`): the synthesis notice, ``facesr
<version>``, the record's file name and the *still id* (the input's and the model's SHA-256 and
the video frame). The record cannot be named by its own SHA-256 in the image, nor the image by
its in the record and both be true: the record lists each output's SHA-256 (of the file as
written, metadata included), and each output names its record and still, so ``facesr verify``
checks both directions: the files against the record's hashes, the record's input, model and
version against what each file says.

Nothing here imports a heavy library to read its version, and nothing fails when git is absent.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

# keys of the text that every upscale output carries (image_metadata)
SOFTWARE = "Software"
DISCLAIMER = "Disclaimer"
RECORD = "facesr.record"
INPUT_SHA256 = "facesr.input_sha256"
MODEL_SHA256 = "facesr.model_sha256"
FRAME = "facesr.frame"

# (module imported at run time, distributions that may provide it)
_LIBRARIES = {
    "torch": ("torch", ("torch",)),
    "opencv": ("cv2", ("opencv-python-headless", "opencv-python", "opencv-contrib-python",
                       "opencv-contrib-python-headless")),
    "onnxruntime": ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    "numpy": ("numpy", ("numpy",)),
    "pillow": ("PIL", ("pillow",)),
}


def facesr_version() -> str:
    """The installed facesr version (the package's own when it is not installed)."""
    try:
        return importlib.metadata.version("facesr")
    except importlib.metadata.PackageNotFoundError:
        from facesr import __version__

        return __version__


def software() -> str:
    """``facesr <version>``, as every output's metadata says it."""
    return f"facesr {facesr_version()}"


def utc_now() -> str:
    """The time now, ISO 8601 in UTC with a ``Z``, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape outputs; the imported module's own where it is
    imported, else its distribution's (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for key, (module, dists) in _LIBRARIES.items():
        mod = sys.modules.get(module)
        version = getattr(mod, "__version__", None) if mod is not None else None
        for dist in () if version else dists:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                version = importlib.metadata.version(dist)
                break
        found[key] = None if version is None else str(version)
    return found


def checkout_root() -> Path | None:
    """The git checkout facesr runs from (an editable install), or None."""
    root = Path(__file__).resolve().parents[2]  # <root>/src/facesr/provenance.py
    if (root / ".git").exists() and (root / "pyproject.toml").is_file():
        return root
    return None


def _git_dir(root: Path) -> Path | None:
    """The repository folder of ``root``: ``.git`` itself, or where a ``.git`` file points
    (worktrees, submodules)."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = dot.read_text(encoding="utf-8").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:"):].strip())
            target = target if target.is_absolute() else root / target
            return target if target.is_dir() else None
    return None


def _read_ref(git_dir: Path, ref: str) -> str | None:
    """The commit a ref names, from loose refs or ``packed-refs`` (in the common folder of a
    worktree too)."""
    dirs = [git_dir]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        common = (git_dir / "commondir").read_text(encoding="utf-8").strip()
        dirs.append((git_dir / common).resolve())
    for d in dirs:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            value = (d / ref).read_text(encoding="ascii").strip()
            if _is_sha(value):
                return value
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in (d / "packed-refs").read_text(encoding="ascii").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                    return parts[0]
    return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _dirty(root: Path) -> bool | None:
    """Whether tracked files differ from the commit (None: git is absent, fails or takes over
    30 s: it runs once per process, and on a loaded machine 5 s was not always enough). Runs
    ``git status`` without optional locks, so it never writes the repository's index."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
             "--untracked-files=no"],
            capture_output=True, timeout=30, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


@functools.cache
def git_info() -> dict | None:
    """``{"commit", "branch", "dirty"}`` of the checkout facesr runs from, or None when it is
    not one. The commit is read from the repository's files; ``dirty`` asks git (None when git
    cannot tell)."""
    root = checkout_root()
    git_dir = None if root is None else _git_dir(root)
    if root is None or git_dir is None:
        return None
    try:
        head = (git_dir / "HEAD").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    branch = None
    if head.startswith("ref:"):
        ref = head[4:].strip()
        branch = ref.removeprefix("refs/heads/")
        commit = _read_ref(git_dir, ref)
    else:
        commit = head if _is_sha(head) else None
    return {"commit": commit, "branch": branch, "dirty": _dirty(root)}


@functools.cache
def _run_facts() -> dict:
    """The facts that stay the same for a whole run (read once per process)."""
    host = None
    with contextlib.suppress(OSError):
        host = socket.gethostname()
    return {"facesr": facesr_version(), "git": git_info(), "host": host,
            "platform": platform.platform(), "libraries": library_versions()}


def record_provenance() -> dict:
    """The ``provenance`` section of a record: the run's facts, the command line (a list, as
    the shell passed it), the working folder and the time now (UTC)."""
    try:
        cwd = os.getcwd()
    except OSError:  # the working folder was removed meanwhile
        cwd = None
    facts = _run_facts()
    return {"facesr": facts["facesr"], "git": facts["git"], "time_utc": utc_now(),
            "argv": list(sys.argv), "cwd": cwd, "host": facts["host"],
            "platform": facts["platform"], "libraries": dict(facts["libraries"])}


def image_metadata(notice: str, record_name: str, input_sha256: str | None,
                   model_sha256: str | None, frame: int | None) -> dict[str, str]:
    """The text every upscale output carries: notice, version, its record and still id."""
    return {DISCLAIMER: notice, SOFTWARE: software(), RECORD: record_name,
            INPUT_SHA256: input_sha256 or "", MODEL_SHA256: model_sha256 or "",
            FRAME: "" if frame is None else str(frame)}
