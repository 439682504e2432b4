"""``--engine ray``: the batch of ``facesr upscale`` on a Ray cluster, with the local run's outputs.

The driver (the ``facesr upscale`` process, holding ``--out``'s lock) splits the work into
items: one input file each, and a video without ``--save-video`` into ranges of its stills
(``_items``; a video with ``--save-video`` goes whole to one worker, as its MP4 needs every x4
frame). Each worker is a Ray actor (``_Worker``) that loads the model and the detector once and
runs ``batch._batch`` on one item at a time, in the driver's working folder and with its command
line, so names, images and records are the local run's (but for timings and the host in the
record's provenance). Files are written atomically, records last, straight into ``--out``, which
must be at the same path on every machine (shared storage). Resume is the records': a folder
one engine left is finished by the other, nothing made twice.

Failures: a bad input fails alone (the worker's report, merged into the driver's, counts each
still once); a worker that dies (killed, out of memory, its machine gone) is replaced, and its
unfinished items go to the queue again (at most ``TRIES`` tries each; the stills it finished
have records and are skipped, so they count as skipped); a write error stops the run as locally
(items not started are left, ``report.left``). Ctrl-C or SIGTERM in the driver kills the
workers before the lock is released; finished stills are kept.

The Ray package is optional (``pip install -e ".[ray]"``): this module imports it, and
``command`` imports this module only for ``--engine ray``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from rich.markup import escape

from facesr.cli import _common
from facesr.cli._common import BatchReport, err
from facesr.io import kind_of

TRIES = 3  # tries of one item: a worker that died on it twice more is not an accident
IN_FLIGHT = 2  # items queued per worker: the next one is there when one finishes
MIN_SPAN = 8  # stills in the smallest range of a video
SPANS_PER_WORKER = 2  # a video is cut into at most this many ranges per worker
# test hook: "N" (a worker exits after making N stills) or "N:FILE" (only the first worker to
# create FILE does): a worker that dies mid-run
EXIT_HOOK = "FACESR_RAY_TEST_EXIT_AFTER"


@dataclass(frozen=True)
class _Item:
    """One worker's share: a file, or stills ``span`` (lo, hi) of a video; ``n`` promised."""

    path: Path
    n: int
    span: tuple[int, int] | None = None


def _items(work: dict[Path, int], workers: int, save_video: bool) -> list[_Item]:
    """The items of ``work`` in its order; a long video becomes ranges of near-equal size (each
    decodes the frames before its range without converting them, so not too many ranges)."""
    items = []
    for path, n in work.items():
        if kind_of(path) != "video" or save_video or n < 2 * MIN_SPAN:
            items.append(_Item(path, n))
            continue
        parts = max(1, min(n // MIN_SPAN, SPANS_PER_WORKER * workers))
        edges = [round(k * n / parts) for k in range(parts + 1)]
        items += [_Item(path, hi - lo, (lo, hi)) for lo, hi in zip(edges, edges[1:], strict=False)]
    return items


class _Worker:
    """A Ray actor: the model and detector loaded once, then ``run`` one item at a time."""

    def __init__(self, cwd: str, argv: list[str], load: dict, detect: dict | None,
                 model_sha: str, exit_after: str | None) -> None:
        import torch

        from facesr.cli.upscale.model import _load
        from facesr.infer.faces import make_detector

        os.chdir(cwd)  # relative inputs and --out as the driver gave them, as the records say
        sys.argv = list(argv)  # the records' command line is the driver's
        # what the batch prints goes back to the driver with the item's result
        self.log = io.StringIO()
        _common.err.file = self.log
        _common.out.file = io.StringIO()
        load = dict(load)
        want = load.pop("precision_label")  # the driver's: the records say it
        torch.set_num_threads(load["threads"] or 1)
        self.runner, rec, label = _load(**load)
        if rec["sha256"] != model_sha or label != want:
            raise RuntimeError(f"{socket.gethostname()}: the model here is not the driver's "
                               f"(sha256 {rec['sha256'][:12]}, {label}; the driver's "
                               f"{model_sha[:12]}, {want})")
        self.det = None if detect is None else make_detector(**detect)
        self.exit_after, self.made = exit_after, 0

    def ready(self) -> str:
        return socket.gethostname()

    def run(self, item: _Item, out_dir: str, settings: dict, model_rec: dict, overwrite: bool,
            save_frame: bool | None, fps: float | None, place: tuple) -> dict:
        """``_batch`` on one item: its report, the lines it said and what it printed."""
        from facesr.cli.upscale.batch import _batch

        report, lines = BatchReport(), []
        self._test_exit()

        def say(line: str) -> None:
            lines.append(line)
            self.made += 1
            self._test_exit()

        whole = _batch({item.path: item.n}, self.runner, self.det, Path(out_dir), settings,
                       model_rec, overwrite, report, say, save_frame=save_frame, fps=fps,
                       places={item.path: place},
                       spans=None if item.span is None else {item.path: item.span},
                       bar_shown=False)
        printed, self.log = self.log.getvalue(), io.StringIO()
        _common.err.file = self.log
        return {"done": report.done, "skipped": report.skipped, "failed": report.failed,
                "left": report.left, "stopped": not whole, "lines": lines, "printed": printed}

    def _test_exit(self) -> None:
        if not self.exit_after:
            return
        count, _, mark = self.exit_after.partition(":")
        if self.made < int(count):
            return
        if mark:
            try:
                os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # another worker died already: this one lives
        os._exit(3)


def run_ray(work: dict[Path, int], places: dict, out_dir: Path, settings: dict, model_rec: dict,
            load: dict, detect: dict | None, overwrite: bool, report: BatchReport,
            say: Callable[[str], None], *, save_frame: bool | None, fps: float | None,
            address: str | None, workers: int | None, threads: int | None) -> None:
    """Run ``work`` on Ray: ``address`` None starts a Ray instance on this machine (``workers``
    x ``threads`` CPUs), else connects to that cluster (``auto``: the one ``ray start`` made
    here); ``workers`` actors (default: the cluster's CPUs / ``threads``) of ``threads`` CPU
    threads each (default 1). ``load`` / ``detect``: ``model._load``'s and
    ``make_detector``'s arguments, run in each worker."""
    per = threads or 1
    started = address is None
    kwargs = {"num_cpus": workers * per} if started and workers else {}
    ours = signal.getsignal(signal.SIGTERM)  # ray.init sets its own: SIGTERM stays Ctrl-C's
    try:
        ray.init(address="local" if started else address, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING, configure_logging=True,
                 **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        report.fail(address or "ray", f"cannot {'start' if started else 'reach'} Ray"
                    f"{'' if started else f' at {address}'}: {first} (a cluster with token "
                    "authentication: RAY_AUTH_MODE=token and its token, see the README)")
        report.left = sum(work.values())
        return
    finally:
        signal.signal(signal.SIGTERM, ours)
    actors: list = []
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        gpus = 1 if load["device"] == "cuda" else 0  # --device cuda: a GPU per worker
        n = workers or max(1, cpus // per if not gpus else
                           min(cpus // per, int(ray.cluster_resources().get("GPU", 0))))
        if n * per > cpus:
            report.fail(out_dir, f"--workers {n} x {per} thread(s) needs {n * per} CPUs; the "
                        f"Ray cluster has {cpus}")
            report.left = sum(work.values())
            return
        remote = ray.remote(num_cpus=per, num_gpus=gpus, max_restarts=0,
                            max_task_retries=0)(_Worker)
        args = (os.getcwd(), list(sys.argv), {**load, "threads": per}, detect,
                model_rec["sha256"], os.environ.get(EXIT_HOOK))
        actors = [remote.remote(*args) for _ in range(n)]
        try:
            hosts = ray.get([a.ready.remote() for a in actors])
        except ray.exceptions.RayActorError as e:
            cause = str(getattr(e, "cause", None) or e).strip().splitlines()
            report.fail(out_dir, f"a Ray worker could not start: {cause[-1] if cause else e}")
            report.left = sum(work.values())
            return
        err.print(f"Ray: {n} worker(s) of {per} thread(s) on {len(set(hosts))} machine(s)",
                  soft_wrap=True, markup=False)
        _drive(_items(work, n, settings["save_video"]), actors, remote, args, places, out_dir,
               settings, model_rec, overwrite, report, say, save_frame, fps)
    finally:
        for a in actors:  # never writing after the driver let go of the lock
            with contextlib.suppress(Exception):
                ray.kill(a, no_restart=True)
        ray.shutdown()


def _drive(items: list[_Item], actors: list, remote, args: tuple, places: dict, out_dir: Path,
           settings: dict, model_rec: dict, overwrite: bool, report: BatchReport,
           say: Callable[[str], None], save_frame: bool | None, fps: float | None) -> None:
    """Hand out ``items`` (``IN_FLIGHT`` per worker), merge results, retry a dead worker's."""
    queue = deque((it, 1) for it in items)
    flying: dict = {}  # ref -> (actor, item, try, number handed out)
    stopped, handed = False, 0
    dead: list = []  # (a worker that died, the number of the item it was running)
    common = (str(out_dir), settings, model_rec, overwrite, save_frame, fps)
    with _common.progress() as bar:
        task = bar.add_task("upscale", total=sum(it.n for it in items), note="")
        while queue or flying:
            while queue and not stopped:
                busy = [sum(1 for a, *_ in flying.values() if a is actor) for actor in actors]
                k = min(range(len(actors)), key=busy.__getitem__)
                if busy[k] >= IN_FLIGHT:
                    break
                item, tries = queue.popleft()
                place = places.get(item.path, (Path(), item.path.stem, None))
                flying[actors[k].run.remote(item, *common, place)] = (actors[k], item, tries,
                                                                      handed)
                handed += 1
            if not flying:
                break
            (ref,), _ = ray.wait(list(flying), num_returns=1)
            actor, item, tries, number = flying.pop(ref)
            try:
                res = ray.get(ref)
            except ray.exceptions.RayActorError:
                if actor in actors:  # its other items fail the same way: replace it once
                    actors[actors.index(actor)] = remote.remote(*args)
                    # a worker runs its items in order: the first of those left was running
                    dead.append((actor, min([number, *(n for a, _, _, n in flying.values()
                                                       if a is actor)])))
                waited = next(n for a, n in dead if a is actor) != number  # a free retry
                if waited or tries < TRIES:
                    queue.appendleft((item, tries + (not waited)))
                    continue
                _fail_once(report, item.path, f"{item.path}: a Ray worker died on it {TRIES} "
                           "times; not tried again (re-run with the same --out to resume)")
                continue
            except ray.exceptions.RayTaskError as e:  # not the batch's own failures: a bug
                first = (str(e.cause if hasattr(e, "cause") else e).strip().splitlines()
                         or [""])[-1]
                _fail_once(report, item.path, f"{item.path}: failed on a Ray worker ({first})")
                continue
            for line in res["lines"]:
                say(line)
            if res["printed"]:  # the worker's warnings and errors, as it printed them
                err.print(res["printed"], end="", markup=False, highlight=False, soft_wrap=True)
            report.done += res["done"]
            report.skipped += res["skipped"]
            seen = {f[0] for f in report.failed}  # a video's ranges: one input, one failure
            report.failed += [tuple(f) for f in res["failed"] if f[0] not in seen]
            report.left += res["left"]
            bar.update(task, advance=item.n, note=item.path.name)
            if res["stopped"]:  # a write error: the rest would fail the same way
                stopped = True
        if stopped:
            report.left += sum(it.n for it, _ in queue)


def _fail_once(report: BatchReport, path: Path, message: str) -> None:
    """Print the failure; count it unless another range of the same input failed already."""
    if str(path) in {f[0] for f in report.failed}:
        err.print(f"[red]error[/red] {escape(message)}", soft_wrap=True)
    else:
        report.fail(path, message)
