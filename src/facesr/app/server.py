"""The app's web server: :func:`create_app` builds the FastAPI application of one output folder.

It owns the HTTP API and its safety rules; the work is ``facesr upscale`` (``jobs``) and what
the page shows is read from its records (``results``):

- every request carries the session token (``?token=`` or the ``X-Facesr-Token`` header), else
  403; the server binds to 127.0.0.1 only (``facesr.cli.app``);
- uploads: the request's Content-Length and each file are size-capped (413), and each file is
  checked by decoding it as ``facesr upscale`` would (``facesr.io``): a bad one is refused with
  the command's own one-line error, naming the file. Uploads are stored, never changed, in the
  uploads folder (outside the output folder: ``facesr upscale`` never reads its outputs as
  inputs), one subfolder per job, under their own names (a name whose record in the output
  folder is of another file gets ``-<8 hex digits of its SHA-256>``);
- paths typed or picked on the page (input folders or files, a weights file or a camera folder
  of ``facesr adapt``) are resolved, links included, and must lie inside an
  allowed root; files served must lie inside the output folder (``..``, absolute paths and
  links out of it are refused: 403);
- one job at a time per output folder (409 while this app's job or another facesr run holds
  it); stop a job with SIGTERM (finished stills are kept; re-run to resume).

Pages and assets are package data (``static/``): nothing is fetched from anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
from importlib import resources
from pathlib import Path, PurePosixPath

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from facesr.app.jobs import Busy, FileProgress, JobRunner, upscale_argv
from facesr.app.results import Records
from facesr.cli._common import count_stills
from facesr.infer.pipeline import NOTICE
from facesr.io import InputError, expand_inputs, kind_of, read_image_array, video_info

GB = 1 << 30
TOKEN_HEADER = "X-Facesr-Token"
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class Refused(Exception):
    """A request the app refuses: an HTTP status and one line for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _static(name: str) -> bytes:
    return resources.files("facesr.app").joinpath("static", name).read_bytes()


def inside(path: Path, roots: list[Path]) -> bool:
    """True when resolved ``path`` is one of ``roots`` (resolved) or under one."""
    return any(path == r or r in path.parents for r in roots)


def resolve_allowed(raw: str, roots: list[Path], what: str = "path") -> Path:
    """A path typed on the page, resolved (links followed; relative to the first root), that
    exists inside an allowed root; else Refused (403/404)."""
    if not raw or "\0" in raw:
        raise Refused(400, f"give a {what}")
    p = Path(os.path.expanduser(raw))
    if not p.is_absolute():
        if not roots:
            raise Refused(403, f"{raw}: no folder is allowed (launch with --allow DIR)")
        p = roots[0] / p
    try:
        real = p.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is None or not inside(real, roots):
        if real is None and inside(p.resolve(), roots):
            raise Refused(404, f"{raw}: no such file or folder")
        allowed = ", ".join(map(str, roots)) or "none"
        raise Refused(403, f"{raw}: outside the allowed folders ({allowed})")
    return real


def safe_name(name: str) -> str:
    """An uploaded file's name as stored: its last part, no control characters, no leading
    dot; empty -> Refused."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    if not base:
        raise Refused(400, f"{name!r}: not a usable file name")
    stem, dot, ext = base.rpartition(".")
    return (stem[:150] + dot + ext[:10]) if dot else base[:160]


def check_file(path: Path, name: str) -> str | None:
    """The one-line error ``facesr upscale`` would report for this file (named ``name``), by
    its content, or None when it decodes."""
    kind = kind_of(name)
    try:
        if kind == "image":
            read_image_array(path)
        elif kind == "video":
            info = video_info(path)
            if info.width <= 0 or info.height <= 0:
                raise InputError(path, "cannot open video (corrupt or unsupported format)")
        else:
            return f"{name}: not an image or video file (suffix {Path(name).suffix or 'none'})"
    except InputError as e:
        return f"{name}: {e.reason}"
    return None


def _stills_of(path: Path) -> int:
    return max(count_stills([path], 1, None), 1)


def _model_list() -> list[dict]:
    from facesr.models import zoo

    try:
        default = zoo.default_model_name()
    except FileNotFoundError:
        default = None
    return [{"name": n, "description": e.description, "licence": e.licence,
             "available": zoo.available(n), "default": n == default}
            for n, e in zoo.MODELS.items()]


def create_app(out_dir: Path, token: str, *, roots: list[Path] | None = None,
               uploads: Path | None = None, max_upload: int = 2 * GB,
               max_file: int | None = None, python: str = sys.executable,
               env: dict[str, str] | None = None) -> FastAPI:
    """The app of output folder ``out_dir`` (made if absent), for requests carrying ``token``.

    Args:
        roots: folders whose files the page may pick as inputs or weights (default: none).
        uploads: where uploaded files are stored, one subfolder per job (default:
            ``<out_dir's parent>/<out_dir's name>-uploads``); never inside ``out_dir``.
        max_upload: most bytes of one upload request (all its files); ``max_file``: of one file
            (default: ``max_upload``).
        python: the interpreter that runs ``python -m facesr upscale``; ``env``: its
            environment (default: this process's).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out_real = out_dir.resolve()
    roots = [Path(r).expanduser().resolve() for r in roots or []]
    uploads = (uploads or out_real.parent / f"{out_real.name}-uploads").expanduser().resolve()
    if uploads == out_real or out_real in uploads.parents:
        raise ValueError(f"the uploads folder {uploads} is inside the output folder {out_real}:"
                         " facesr upscale never reads its outputs as inputs")
    max_file = max_file or max_upload
    runner = JobRunner(out_real, env)
    records = Records(out_real)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        runner.close()  # the server is going down: stop a running job (it keeps its stills)

    app = FastAPI(title="facesr", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.runner, app.state.records, app.state.token = runner, records, token
    app.state.out_dir, app.state.roots, app.state.uploads = out_real, roots, uploads

    @app.middleware("http")
    async def guard(request: Request, call_next):
        given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            response = PlainTextResponse(
                "403 forbidden: this page needs its session token; open the address that "
                "`facesr app` printed", status_code=403)
        else:
            response = await call_next(request)
        response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": _CSP, "X-Frame-Options": "DENY"})
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, e: Refused):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.get("/")
    def index() -> Response:
        page = _static("index.html").decode().replace("__TOKEN__", token)
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise Refused(404, f"{name}: not found")
        return Response(_static(name), media_type=f"{STATIC[name]}; charset=utf-8")

    @app.get("/api/info")
    def info() -> dict:
        job = runner.running()
        return {"out_dir": str(out_real), "roots": [str(r) for r in roots],
                "uploads": str(uploads), "max_upload": max_upload, "max_file": max_file,
                "notice": NOTICE, "models": _model_list(), "busy": runner.busy(),
                "job": job.id if job else None}

    @app.get("/api/browse")
    def browse(path: str = "") -> dict:
        if not path:
            return {"path": None, "parent": None, "entries": [
                {"name": str(r), "path": str(r), "kind": "folder"} for r in roots]}
        real = resolve_allowed(path, roots)
        if not real.is_dir():
            raise Refused(400, f"{path}: not a folder")
        entries = []
        for p in sorted(real.iterdir(), key=lambda p: p.name.lower()):
            if p.name.startswith("."):
                continue
            with contextlib.suppress(OSError, RuntimeError):
                r = p.resolve(strict=True)
                if not inside(r, roots):
                    continue
                kind = "folder" if r.is_dir() else kind_of(p)
                if kind in ("folder", "image", "video") or p.suffix.lower() in (
                        ".safetensors", ".pth", ".pt"):
                    entries.append({"name": p.name, "path": str(p),
                                    "kind": kind if kind != "other" else "weights",
                                    "camera": kind == "folder" and (r / "camera.json").is_file()})
        parent = real.parent if real not in roots and inside(real.parent, roots) else None
        return {"path": str(real), "parent": str(parent) if parent else None,
                "entries": entries}

    def pick_model(name: str, path: str) -> str | None:
        from facesr.models import zoo

        if path:  # a weights file, or a camera folder of facesr adapt (as --model takes)
            real = resolve_allowed(path, roots, "weights file or camera folder")
            if real.is_dir() and not (real / "camera.json").is_file():
                raise Refused(400, f"{path}: a folder, not a model file nor a camera profile "
                              "of facesr adapt (no camera.json)")
            if real.is_dir() and not (real / "model.safetensors").is_file():
                raise Refused(400, f"{path}: this camera profile has no model.safetensors yet")
            return str(real)
        if not name:
            return None
        if name not in zoo.MODELS:
            raise Refused(400, f"{name}: not a model name ({', '.join(zoo.MODELS)})")
        if not zoo.available(name):
            raise Refused(400, f"{name}: not installed here")
        return name

    def save_uploads(job_dir: Path, items: list[tuple[str, object]]
                     ) -> tuple[dict[str, FileProgress], list[Path], set[str], list[str]]:
        files: dict[str, FileProgress] = {}
        inputs, digests, rejected = [], set(), []
        used: set[str] = set()
        for raw_name, upload in items:
            try:
                name = safe_name(raw_name)
            except Refused as e:
                rejected.append(str(e))
                continue
            stem, ext = Path(name).stem, Path(name).suffix
            n = 2
            while name.casefold() in used:
                name, n = f"{stem}-{n}{ext}", n + 1
            job_dir.mkdir(parents=True, exist_ok=True)
            target = job_dir / name
            digest, size = hashlib.sha256(), 0
            src = upload.file
            src.seek(0)
            too_big = False
            with open(target, "xb") as f:
                while chunk := src.read(1 << 20):
                    size += len(chunk)
                    if size > max_file:
                        too_big = True
                        break
                    digest.update(chunk)
                    f.write(chunk)
            if too_big:
                target.unlink()
                rejected.append(f"{raw_name}: larger than the {max_file:,} byte limit per file")
                continue
            if (error := check_file(target, name)) is not None:
                target.unlink()
                rejected.append(error)
                continue
            sha = digest.hexdigest()
            # a name whose record here is of another file: a name of its own
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                old = json.loads((out_real / f"{Path(name).stem}.json").read_text("utf-8"))
                if old["input"]["sha256"] != sha:
                    renamed = f"{Path(name).stem}-{sha[:8]}{Path(name).suffix}"
                    target = target.rename(job_dir / renamed)
                    name = renamed
            used.add(name.casefold())
            target.chmod(0o444)  # an input: never changed
            real = target.resolve()
            files[str(real)] = FileProgress(raw_name, _stills_of(real))
            inputs.append(real)
            digests.add(sha)
        return files, inputs, digests, rejected

    def picked_inputs(path: str) -> tuple[dict[str, FileProgress], list[Path]]:
        real = resolve_allowed(path, roots, "file or folder")
        if real == out_real or out_real in real.parents:
            raise Refused(400, f"{path}: inside the output folder (outputs are never inputs)")
        try:
            found = expand_inputs([real])
        except InputError as e:
            raise Refused(400, str(e)) from None
        files = {}
        for f in found:
            r = f.resolve()
            if not inside(r, roots):
                raise Refused(403, f"{f}: links outside the allowed folders")
            if out_real == r or out_real in r.parents:
                continue
            files[str(r)] = FileProgress(str(f.relative_to(real.parent)), _stills_of(r))
        if not files:
            raise Refused(400, f"{path}: no images or videos")
        return files, [real]

    @app.post("/api/jobs")
    async def start_job(request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise Refused(411, "uploads need a Content-Length")
        if int(length) > max_upload:
            raise Refused(413, f"upload of {int(length):,} bytes is over the {max_upload:,} "
                          "byte limit (launch with a larger --max-upload)")
        if (why := runner.busy()) is not None:
            raise Refused(409, why)
        form = await request.form(max_files=10_000, max_fields=100)
        try:
            model = pick_model(str(form.get("model") or ""), str(form.get("model_path") or ""))
            items = [(u.filename or "", u) for u in form.getlist("files")
                     if hasattr(u, "file") and u.filename]
            picked, given = {}, []
            if path := str(form.get("path") or "").strip():  # refused before anything is kept
                picked, given = await run_in_threadpool(picked_inputs, path)
            job_dir = uploads / secrets.token_hex(6)
            files, inputs, digests, rejected = await run_in_threadpool(
                save_uploads, job_dir, items)
            files.update(picked)
            inputs += given
        finally:
            await form.close()
        if not inputs:
            shutil.rmtree(job_dir, ignore_errors=True)
            return JSONResponse({"error": "nothing to do: no usable image or video",
                                 "rejected": rejected}, status_code=400)
        argv = upscale_argv(inputs, out_real, model, python)
        try:
            job = runner.start(argv, inputs, files, digests=digests, hide=f"{job_dir}/")
        except Busy as e:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise Refused(409, str(e)) from None
        return JSONResponse({"job": job.view(), "rejected": rejected})

    def job_of(job_id: str):
        job = runner.jobs.get(job_id)
        if job is None:
            raise Refused(404, f"no job {job_id}")
        return job

    @app.get("/api/jobs/{job_id}")
    def job_view(job_id: str, wait: float = 0) -> dict:
        """The job; with ``wait`` (seconds, at most 60), once it has ended or then."""
        job = job_of(job_id)
        if wait > 0:
            job.ended.wait(min(wait, 60.0))
        return job.view()

    @app.post("/api/jobs/{job_id}/stop")
    def job_stop(job_id: str) -> dict:
        return {"stopped": runner.stop(job_of(job_id).id)}

    def chosen(job: str, run: str) -> list:
        if job:
            j = job_of(job)
            return records.of_inputs(set(j.files), j.digests)
        if run:
            return records.of_run(run)
        return records.all()

    @app.get("/api/results")
    def results(job: str = "", run: str = "") -> dict:
        return {"stills": records.view(chosen(job, run))}

    @app.get("/api/history")
    def history() -> dict:
        return {"runs": records.runs()}

    @app.get("/api/zip")
    def zipped(job: str = "", run: str = "") -> Response:
        data = records.zip(chosen(job, run))
        name = f"facesr-{job or run or 'all'}.zip"
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/file/{rel:path}")
    def file(rel: str, download: int = 0) -> Response:
        parts = PurePosixPath(rel).parts
        if (not rel or rel.startswith(("/", "\\")) or "\0" in rel or ".." in parts
                or any(p.startswith(".") for p in parts) or re.match(r"^[A-Za-z]:", rel)):
            raise Refused(403, f"{rel}: not a file of the output folder")
        try:
            real = (out_real / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            raise Refused(404, f"{rel}: not found") from None
        if not inside(real, [out_real]) or real == out_real:
            raise Refused(403, f"{rel}: not a file of the output folder")
        if not real.is_file():
            raise Refused(404, f"{rel}: not found")
        media = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp",
                 ".tif": "image/tiff", ".json": "application/json",
                 ".mp4": "video/mp4"}.get(real.suffix.lower(), "application/octet-stream")
        headers = ({"Content-Disposition": f'attachment; filename="{real.name}"'}
                   if download else {})
        return FileResponse(real, media_type=media, headers=headers)

    return app
