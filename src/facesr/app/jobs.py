"""The app's jobs: each one is ``facesr upscale INPUTS -o OUT -n MODEL --save-lr`` run as a
subprocess (``python -m facesr``), so its outputs, records, folder layout, resume rules, lock
and timing are the command's exactly; the CLI and the app resume each other's work.

This module owns the command line a job runs (:func:`upscale_argv`), the check whether another
facesr run holds an output folder's ``.facesr.lock`` (:func:`folder_busy`), and the runner
(:class:`JobRunner`): one job at a time per output folder, its progress per input file read
from the command's per-still lines (stdout) and one-line errors (stderr), and stopping it
(SIGTERM: the command keeps finished stills, as on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from facesr.cli._common import LOCK_NAME

# stdout of `facesr upscale`: "<path>[#<frame>]: <face|frame> mode (<why>)... -> <files>"
_STILL = re.compile(r"^(?P<path>.*?)(?:#(?P<frame>\d+))?: (?:face|frame) mode \(")
_SUMMARY = re.compile(r"^\d+ \S+ done, \d+ skipped, \d+ failed")


class Busy(Exception):
    """The output folder already has a job (of this app or another facesr run); one line."""


def upscale_argv(inputs: list[Path], out_dir: Path, model: str | None,
                 python: str = sys.executable) -> list[str]:
    """The command line of a job: the ``facesr upscale`` a user would type, with --save-lr (the
    low-resolution crops the page shows beside each result)."""
    argv = [python, "-m", "facesr", "upscale", *map(str, inputs), "-o", str(out_dir),
            "--save-lr"]
    return argv + (["-n", model] if model else [])


def folder_busy(out_dir: Path) -> str | None:
    """A line saying that another process holds ``out_dir``'s ``.facesr.lock``, else None.
    Creates nothing (a shared flock test on the lock file when it exists)."""
    path = out_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode("ascii", "replace").strip()
        who = f"process {owner}" if owner.isdigit() else "another process"
        return (f"{out_dir} is in use by another facesr run ({who}); wait for it to finish "
                "or launch the app with another --out")
    finally:
        os.close(fd)
    return None


@dataclass
class FileProgress:
    """One input of a job as the page shows it."""

    name: str  # as the user knows it: the uploaded file's name, or the path picked
    stills: int = 1  # stills it holds (video: frames)
    done: int = 0
    state: str = "queued"  # queued, running, done, failed
    errors: list[str] = field(default_factory=list)


@dataclass
class Job:
    """One run of ``facesr upscale`` over the inputs of one request."""

    id: str
    argv: list[str]
    inputs: list[Path]  # what the command is given (files and folders)
    files: dict[str, FileProgress]  # resolved input file -> its progress
    digests: set[str] = field(default_factory=set)  # SHA-256 of uploaded inputs
    hide: str = ""  # a prefix removed from messages (the job's uploads folder)
    state: str = "running"  # running, done, failed, stopped
    returncode: int | None = None
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    summary: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    proc: subprocess.Popen | None = None
    ended: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict:
        """The job as JSON for the page."""
        total = sum(f.stills for f in self.files.values())
        done = sum(f.done for f in self.files.values())
        return {"id": self.id, "state": self.state, "returncode": self.returncode,
                "command": " ".join(["facesr", *self.argv[3:]]), "started": self.started,
                "finished": self.finished, "stills": total, "stills_done": done,
                "files": [{"name": f.name, "stills": f.stills, "done": f.done, "state": f.state,
                           "errors": f.errors} for f in self.files.values()],
                "errors": self.errors, "summary": self.summary, "log": self.log[-200:]}

    def _shown(self, line: str) -> str:
        return line.replace(self.hide, "") if self.hide else line

    def _file(self, path: str) -> FileProgress | None:
        return self.files.get(path)

    def on_stdout(self, line: str) -> None:
        self.log.append(self._shown(line))
        m = _STILL.match(line)
        if m and (f := self._file(m.group("path"))) is not None:
            f.done = min(f.done + 1, f.stills) if f.stills else f.done + 1
            f.state = "done" if f.done >= f.stills else "running"

    def on_stderr(self, line: str) -> None:
        shown = self._shown(line)
        if line.startswith("error "):
            message = shown[len("error "):]
            self.errors.append(message)
            path = line[len("error "):].split(": ", 1)[0]
            if (f := self._file(path)) is not None:
                f.state = "failed"
                f.errors.append(message)
        elif line.startswith("Error: "):  # a usage error of the command (e.g. its --model)
            self.errors.append(shown[len("Error: "):])
        elif _SUMMARY.match(line):
            self.summary = line
        elif line.strip() and not line.startswith("upscale "):  # the progress bar's last state
            self.log.append(shown)

    def on_exit(self, code: int) -> None:
        self.returncode = code
        self.finished = time.time()
        stopped = code in (130, 143) or code < 0  # Ctrl-C, SIGTERM (handled or not yet)
        for f in self.files.values():
            if f.state in ("queued", "running"):
                if code in (0, 1):  # no line: skipped (done before: resume)
                    f.state, f.done = "done", f.stills
                elif stopped:
                    f.state = "stopped"
        self.state = "done" if code == 0 else "stopped" if stopped else "failed"
        self.ended.set()


class JobRunner:
    """Runs the jobs of one output folder, one at a time."""

    def __init__(self, out_dir: Path, env: dict[str, str] | None = None) -> None:
        self.out_dir = out_dir
        self.env = env
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def running(self) -> Job | None:
        return next((j for j in self.jobs.values() if j.state == "running"), None)

    def busy(self) -> str | None:
        """Why a job cannot start now, or None."""
        if (job := self.running()) is not None:
            return f"{self.out_dir} has a job running ({job.id}); wait for it or stop it"
        return folder_busy(self.out_dir)

    def start(self, argv: list[str], inputs: list[Path], files: dict[str, FileProgress], *,
              digests: set[str] | None = None, hide: str = "") -> Job:
        """Start ``argv`` as a job. Raises Busy (one line) when the folder has one."""
        with self._lock:
            if (why := self.busy()) is not None:
                raise Busy(why)
            job = Job(secrets.token_hex(6), argv, inputs, files, digests or set(), hide)
            env = {**(self.env or os.environ), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
            job.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, errors="replace",
                                        env=env)
            self.jobs[job.id] = job
        for f in files.values():
            f.state = "running"
        out = threading.Thread(target=self._read, args=(job.proc.stdout, job.on_stdout),
                               daemon=True)
        err = threading.Thread(target=self._read, args=(job.proc.stderr, job.on_stderr),
                               daemon=True)
        out.start()
        err.start()
        threading.Thread(target=self._wait, args=(job, out, err), daemon=True).start()
        return job

    @staticmethod
    def _read(stream, handle) -> None:
        for line in stream:
            handle(line.rstrip("\n"))

    def _wait(self, job: Job, *readers: threading.Thread) -> None:
        code = job.proc.wait()
        for r in readers:
            r.join()
        job.on_exit(code)

    def stop(self, job_id: str) -> bool:
        """SIGTERM a running job (the command keeps its finished stills); False if none."""
        job = self.jobs.get(job_id)
        if job is None or job.state != "running" or job.proc is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            job.proc.terminate()
        return True

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job has ended (tests, benchmark)."""
        job = self.jobs[job_id]
        if not job.ended.wait(timeout):
            raise TimeoutError(f"job {job_id} still running after {timeout} s")
        return job

    def close(self) -> None:
        """Stop a running job (the server is going down) and wait for it."""
        job = self.running()
        if job is not None and job.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                job.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.proc.wait(timeout=30)
