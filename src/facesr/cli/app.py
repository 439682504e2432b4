"""``facesr app``: serve the local web page (``facesr.app``) for one output folder on
127.0.0.1, with a fresh session token in its address, and open it in the browser.

Needs the ``app`` extra (FastAPI, uvicorn, python-multipart); without it the command says in
one line how to install it and exits 2.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from facesr.cli._common import err, out

_NEEDS = ("fastapi", "uvicorn", "multipart")
INSTALL = "pip install 'facesr[app]'  (fastapi, uvicorn, python-multipart)"


def app(
    out_dir: Annotated[Path, typer.Option(
        "-o", "--out", metavar="PATH", help="Output folder of the jobs (as facesr upscale "
        "--out): outputs, records, history.", file_okay=False)] = Path("facesr-out"),
    port: Annotated[int, typer.Option(
        metavar="N", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 0,
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Print the address only; do not open a browser.")] = False,
    allow: Annotated[list[Path] | None, typer.Option(
        metavar="PATH", help="A folder whose files the page may pick as inputs or weights "
        "(repeatable; default: the current folder).", file_okay=False,
        show_default=False)] = None,
    uploads: Annotated[Path | None, typer.Option(
        metavar="PATH", help="Where uploaded files are kept (default: <out>-uploads beside "
        "--out).", file_okay=False, show_default=False)] = None,
    max_upload: Annotated[float, typer.Option(
        metavar="GB", min=0.001, help="Most gigabytes of one upload (all its files).")] = 2.0,
) -> None:
    """Open a local web page that runs facesr upscale: drop images, face crops or a video,
    watch progress, compare before/after, download the results with their records.

    The server listens on 127.0.0.1 only; its address carries a random session token that
    every request must present. Jobs write exactly what facesr upscale --save-lr writes, so the
    command and the page resume each other's work in the same --out. Stop with Ctrl-C.
    """
    for hint, value in (("--out", out_dir), ("--uploads", uploads), *(
            ("--allow", a) for a in allow or [])):
        if value is not None and str(value).startswith("-"):  # e.g. `--out --help`
            raise typer.BadParameter(f"{value}: looks like an option, not a folder",
                                     param_hint=hint)
    missing = [m for m in _NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        err.print(f"facesr app needs the app extra: {INSTALL}; missing: "
                  f"{', '.join('python-multipart' if m == 'multipart' else m for m in missing)}",
                  soft_wrap=True, markup=False)
        raise typer.Exit(code=2)
    import uvicorn

    from facesr.app.server import GB, create_app

    token = secrets.token_urlsafe(24)
    roots = allow or [Path.cwd()]
    try:
        web = create_app(out_dir, token, roots=roots, uploads=uploads,
                         max_upload=int(max_upload * GB))
    except (ValueError, OSError) as e:
        err.print(f"error {e}", soft_wrap=True, markup=False)
        raise typer.Exit(code=2) from None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)  # connections wait from now on, while the server starts
    except OSError as e:
        err.print(f"error port {port} on 127.0.0.1: {e.strerror or e}", soft_wrap=True,
                  markup=False)
        raise typer.Exit(code=2) from None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}"
    out.print(f"facesr app: {url}", soft_wrap=True, markup=False)
    out.print(f"output folder {web.state.out_dir}; inputs may be picked in "
              f"{', '.join(map(str, web.state.roots))}; Ctrl-C stops", soft_wrap=True,
              markup=False)
    out.file.flush()
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", access_log=False))
    if not no_browser and not os.environ.get("FACESR_NO_BROWSER"):
        def _open() -> None:
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=_open, daemon=True).start()
    server.run(sockets=[sock])
