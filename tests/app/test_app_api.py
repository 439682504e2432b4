"""The app's HTTP API (FastAPI TestClient): the session token, paths kept inside the allowed and
output folders, upload checks, one job per folder, and a job's outputs and records equal to
``facesr upscale``'s on the same file (and its zip equal to the records' outputs)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from app_helpers import TOKEN, make_face, make_frame, wait_job
from typer.testing import CliRunner

from facesr.cli import app as cli

pytest.importorskip("fastapi", reason="needs the app extra: pip install 'facesr[app]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install httpx")
# starlette's TestClient on httpx (the app's dev dependency) warns that it prefers httpx2
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with:Warning")
runner = CliRunner()
MODEL = "facesr-default"


def _upload(client, *files: tuple[str, bytes], **data):
    return client.post("/api/jobs", files=[("files", (n, b, "application/octet-stream"))
                                           for n, b in files], data={"model": MODEL, **data})


# ------------------------------------------------------------------------ the token
def test_every_request_needs_the_token(make_client):
    client, _ = make_client()
    bare = client.__class__(client.app)  # no token header
    for path in ("/", "/static/app.js", "/static/app.css", "/api/info", "/api/history",
                 "/api/results", "/api/zip", "/api/file/x.png", "/api/browse"):
        r = bare.get(path)
        assert r.status_code == 403, path
        assert "token" in r.text
        assert bare.get(path, params={"token": "wrong"}).status_code == 403
    assert bare.post("/api/jobs", files=[("files", ("a.png", b"x"))]).status_code == 403
    assert bare.get("/", params={"token": TOKEN}).status_code == 200
    assert client.get("/api/info").status_code == 200  # the header


def test_the_page_is_served_locally_with_the_token_in_it(make_client):
    client, _ = make_client()
    page = client.get("/").text
    assert f"static/app.js?token={TOKEN}" in page and "http" not in page.split("<body>")[1]
    assert "http://" not in client.get("/static/app.js").text.replace("http://127", "")
    csp = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert client.get("/static/../server.py").status_code in (403, 404)
    assert client.get("/static/index.html").status_code == 404  # only via / (with the token)


# ------------------------------------------------------------------------ paths
def test_paths_outside_the_allowed_folders_are_refused(make_client, tmp_path, face):
    client, app = make_client()
    root = app.state.roots[0]
    (root / "in").mkdir()
    make_face(root / "in" / "a.png")
    secret = tmp_path / "secret"
    secret.mkdir()
    make_face(secret / "b.png")
    (root / "link").symlink_to(secret)
    (root / "in" / "escape.png").symlink_to(secret / "b.png")

    assert client.get("/api/browse", params={"path": str(root / "in")}).status_code == 200
    for bad in ("..", "../secret", str(secret), "/etc", "link", str(root / "link"),
                f"{root}/../secret"):
        r = client.get("/api/browse", params={"path": bad})
        assert r.status_code == 403, (bad, r.text)
        assert "outside the allowed folders" in r.json()["error"]
    names = [e["name"] for e in client.get("/api/browse", params={"path": str(root)}).json()[
        "entries"]]
    assert "link" not in names and "in" in names  # a link out of the roots is not listed

    for bad in ("../secret", str(secret / "b.png"), "/etc/passwd", "link/b.png"):
        r = client.post("/api/jobs", data={"model": MODEL, "path": bad})
        assert r.status_code == 403, (bad, r.text)
    r = client.post("/api/jobs", data={"model": MODEL, "path": "in"})  # holds escape.png
    assert r.status_code == 403 and "escape.png: links outside" in r.json()["error"]
    r = client.post("/api/jobs", data={"model_path": str(secret / "b.png"),
                                       "path": str(root / "in" / "a.png")})
    assert r.status_code == 403
    (root / "notacamera").mkdir()
    r = client.post("/api/jobs", data={"model_path": str(root / "notacamera"),
                                       "path": str(root / "in" / "a.png")})
    assert r.status_code == 400 and "no camera.json" in r.json()["error"]
    r = client.post("/api/jobs", data={"model": "no-such-model", "path": "in/a.png"})
    assert r.status_code == 400 and "not a model name" in r.json()["error"]
    assert not app.state.runner.jobs  # nothing ran


def test_only_files_of_the_output_folder_are_served(make_client, tmp_path):
    client, app = make_client()
    out = app.state.out_dir
    (out / "ok.json").write_text("{}")
    (out / "sub").mkdir()
    (out / "sub" / "x.png").write_bytes(b"png")
    (tmp_path / "outside.txt").write_text("secret")
    (out / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert client.get("/api/file/ok.json").status_code == 200
    assert client.get("/api/file/sub/x.png").content == b"png"
    for bad in ("%2e%2e/outside.txt", "sub/%2e%2e/%2e%2e/outside.txt", "%2Fetc%2Fpasswd",
                "..%2Foutside.txt", "link.txt", ".facesr.lock"):
        r = client.get(f"/api/file/{bad}")
        assert r.status_code in (403, 404), bad
        assert "secret" not in r.text
    assert client.get("/api/file/link.txt").status_code == 403


def test_the_uploads_folder_cannot_be_inside_the_output_folder(tmp_path):
    from facesr.app.server import create_app

    with pytest.raises(ValueError, match="inside the output folder"):
        create_app(tmp_path / "out", TOKEN, uploads=tmp_path / "out" / "up")


# ------------------------------------------------------------------------ uploads
def test_uploads_are_checked_by_content_with_the_commands_errors(make_client, tmp_path):
    client, app = make_client()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    video_named_png = tmp_path / "clip.png"
    video_named_png.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\0" * 64)
    r = _upload(client, ("bad.png", bad.read_bytes()), ("notes.txt", b"hello"),
                ("clip.png", video_named_png.read_bytes()), ("../../evil.png", b"junk"))
    assert r.status_code == 400
    rejected = r.json()["rejected"]
    # the CLI's own lines for the same files
    res = runner.invoke(cli, ["upscale", str(bad), str(notes), str(video_named_png), "-o",
                              str(tmp_path / "cli"), "-n", MODEL])
    for name in ("bad.png", "notes.txt", "clip.png"):
        line = next(m for m in rejected if m.startswith(f"{name}: "))
        assert line.split(": ", 1)[1] in res.output, (line, res.output)
    assert "evil.png: cannot decode image (corrupt, truncated or unsupported format)" in rejected
    assert not list((tmp_path / "uploads").rglob("*.*"))  # refused files are not kept
    assert not list((tmp_path / "out").iterdir())


def test_uploads_are_size_capped(make_client, face):
    client, _ = make_client(max_upload=4000)
    r = _upload(client, ("face.png", face.read_bytes()), ("big.png", b"\0" * 5000))
    assert r.status_code == 413 and "limit" in r.json()["error"]
    client, _ = make_client(max_upload=1 << 20, max_file=face.stat().st_size + 10)
    r = _upload(client, ("face.png", face.read_bytes()), ("big.png", b"\0" * 100_000))
    assert r.status_code == 200
    assert r.json()["rejected"] == [f"big.png: larger than the {face.stat().st_size + 10:,} "
                                    "byte limit per file"]


def test_a_folder_held_by_another_run_is_busy(make_client, face):
    from facesr.cli._common import lock_folder

    client, app = make_client()
    with lock_folder(app.state.out_dir):
        info = client.get("/api/info").json()
        assert "in use by another facesr run" in info["busy"]
        r = _upload(client, ("face.png", face.read_bytes()))
        assert r.status_code == 409 and f"process {os.getpid()}" in r.json()["error"]
    assert client.get("/api/info").json()["busy"] is None


# ------------------------------------------------------------------------ jobs
def _comparable(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    rec.pop("provenance")
    rec.pop("timings_ms")
    return rec


def test_a_job_writes_what_facesr_upscale_writes(make_client, face, tmp_path):
    client, app = make_client()
    r = _upload(client, ("face.png", face.read_bytes()))
    assert r.status_code == 200, r.text
    job = wait_job(client, app, r.json()["job"]["id"])
    assert job["state"] == "done" and job["returncode"] == 0, job
    assert job["files"] == [{"name": "face.png", "stills": 1, "done": 1, "state": "done",
                             "errors": []}]
    assert client.post("/api/jobs/" + job["id"] + "/stop").json() == {"stopped": False}
    out = app.state.out_dir
    uploaded = next((tmp_path / "uploads").rglob("face.png"))
    assert uploaded.read_bytes() == face.read_bytes() and uploaded.stat().st_mode & 0o222 == 0

    # the command itself on the same file
    cli_out = tmp_path / "cli"
    res = runner.invoke(cli, ["upscale", str(uploaded), "-o", str(cli_out), "--save-lr", "-n",
                              MODEL])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in cli_out.iterdir()) == [
        "face.json", "face_lr.png", "face_x4.png"]
    app_rec = json.loads((out / "face.json").read_text())
    assert _comparable(app_rec) == _comparable(json.loads((cli_out / "face.json").read_text()))
    assert app_rec["settings"]["save_lr"] is True
    assert (out / "face_x4.png").read_bytes() == (cli_out / "face_x4.png").read_bytes()
    verify = runner.invoke(cli, ["verify", str(out)])
    assert verify.exit_code == 0, verify.output

    # what the page shows, and the zip
    stills = client.get("/api/results", params={"job": job["id"]}).json()["stills"]
    assert [(s["record"], s["faces"]) for s in stills] == [("face.json", [
        {"output": "face_x4.png", "lr": "face_lr.png", "score": None, "box": None}])]
    assert stills[0]["notice"] == app_rec["notice"]
    z = zipfile.ZipFile(io.BytesIO(client.get("/api/zip", params={"job": job["id"]}).content))
    assert sorted(z.namelist()) == sorted(["face.json", *(o["file"] for o in app_rec["outputs"])])
    for n in z.namelist():
        assert z.read(n) == (out / n).read_bytes()
    assert client.get("/api/file/face_x4.png").content == (out / "face_x4.png").read_bytes()

    # resume: the same face again is skipped, and a run of the command in the same folder too
    r = _upload(client, ("face.png", face.read_bytes()))
    job2 = wait_job(client, app, r.json()["job"]["id"])
    assert job2["state"] == "done" and "0 images/frames done, 1 skipped" in job2["summary"]
    res = runner.invoke(cli, ["upscale", str(face), "-o", str(out), "--save-lr", "-n", MODEL])
    assert res.exit_code == 0 and "1 skipped" in res.output
    runs = client.get("/api/history").json()["runs"]
    assert len(runs) == 1 and runs[0]["stills"] == 1 and runs[0]["command"].startswith(
        "facesr upscale ")
    # another file under the same name gets a name of its own (its record is not the old one's)
    other = make_face(tmp_path / "other" / "face.png")
    other.write_bytes(other.read_bytes() + b"\0")  # same pixels, another file
    r = _upload(client, ("face.png", other.read_bytes()))
    job3 = wait_job(client, app, r.json()["job"]["id"])
    assert job3["state"] == "done", job3
    assert len(list(out.glob("face-*.json"))) == 1


def test_a_picked_folder_keeps_the_commands_layout(make_client, tmp_path):
    client, app = make_client()
    root = app.state.roots[0]
    make_face(root / "cam" / "day1" / "a.png")
    (root / "cam" / "day1" / "broken.jpg").write_bytes(b"\xff\xd8junk")
    r = client.post("/api/jobs", data={"model": MODEL, "path": str(root / "cam")})
    assert r.status_code == 200, r.text
    job = wait_job(client, app, r.json()["job"]["id"])
    assert job["state"] == "failed" and job["returncode"] == 1
    states = {f["name"]: f["state"] for f in job["files"]}
    assert states == {"cam/day1/a.png": "done", "cam/day1/broken.jpg": "failed"}
    broken = root / "cam" / "day1" / "broken.jpg"
    assert any(e.startswith(f"{broken}: ") for e in job["errors"]), job["errors"]
    assert (app.state.out_dir / "day1" / "a.json").is_file()
    stills = client.get("/api/results", params={"job": job["id"]}).json()["stills"]
    assert [s["record"] for s in stills] == ["day1/a.json"]
    assert stills[0]["faces"][0]["lr"] == "day1/a_lr.png"


def test_a_job_can_be_stopped(make_client, face):
    client, app = make_client()
    r = _upload(client, ("face.png", face.read_bytes()))
    job_id = r.json()["job"]["id"]
    assert client.post(f"/api/jobs/{job_id}/stop").json() == {"stopped": True}
    job = client.get(f"/api/jobs/{job_id}", params={"wait": 60}).json()
    assert job["state"] == "stopped" and job["files"][0]["state"] == "stopped", job
    assert client.get("/api/info").json()["busy"] is None  # the folder is free again
    assert not (app.state.out_dir / ".facesr.lock").exists()


@pytest.mark.slow
def test_a_frame_and_a_video_show_boxes_scores_and_timecodes(make_client, tmp_path):
    import av
    import cv2

    client, app = make_client()
    source = make_frame(tmp_path / "src" / "frame.png")
    frame = cv2.imread(str(source))
    clip = tmp_path / "clip.mp4"
    h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
    with av.open(str(clip), "w") as f:
        s = f.add_stream("libx264", rate=2)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for img in (frame, frame[:, ::-1]):
            vf = av.VideoFrame.from_ndarray(img[:h, :w, ::-1].copy(), format="rgb24")
            for p in s.encode(vf):
                f.mux(p)
        for p in s.encode():
            f.mux(p)
    r = _upload(client, ("frame.png", source.read_bytes()), ("clip.mp4", clip.read_bytes()))
    assert r.status_code == 200, r.text
    job = wait_job(client, app, r.json()["job"]["id"])
    assert job["state"] == "done", job
    assert {f["name"]: f["stills"] for f in job["files"]} == {"frame.png": 1, "clip.mp4": 2}
    stills = client.get("/api/results", params={"job": job["id"]}).json()["stills"]
    by = {s["record"]: s for s in stills}
    still = by["frame.json"]
    assert still["mode"] == "frame" and still["frame"] == "frame_frame_x4.png"
    assert len(still["faces"]) == 1
    for k, f in enumerate(still["faces"]):
        assert 0 < f["score"] <= 1 and len(f["box"]) == 4
        assert f["output"] == f"frame_face{k}_x4.png" and f["lr"] == f"frame_face{k}_lr.png"
    video = [s for s in stills if s["frame_index"] is not None]
    assert [s["timecode"] for s in video] == ["00:00:00.000", "00:00:00.500"]
    assert all(s["faces"] and s["frame"] for s in video)
    z = zipfile.ZipFile(io.BytesIO(client.get("/api/zip", params={"job": job["id"]}).content))
    want = set()
    for s in stills:
        rec = json.loads((app.state.out_dir / s["record"]).read_text())
        want |= {s["record"], *(o["file"] for o in rec["outputs"])}
    assert set(z.namelist()) == want


# ------------------------------------------------------------------------ the command
def test_facesr_app_without_the_extra_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else real(name, *a))
    res = runner.invoke(cli, ["app", "--no-browser"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "pip install 'facesr[app]'" in res.output
    assert "Traceback" not in res.output


def test_facesr_app_refuses_an_option_as_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["app", "--out", "--help"])
    assert res.exit_code == 2 and "looks like an option" in res.output
    assert not list(tmp_path.iterdir())


def test_facesr_app_serves_on_localhost_with_a_token(tmp_path):
    import urllib.error
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "facesr", "app", "--no-browser", "-o",
                             str(tmp_path / "out"), "--allow", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("facesr app: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split(": ", 1)[1].strip()
        base, token = url.split("/?token=")
        assert len(token) >= 30
        with urllib.request.urlopen(f"{base}/api/info?token={token}", timeout=30) as r:
            assert json.load(r)["out_dir"] == str((tmp_path / "out").resolve())
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}/api/info", timeout=30)
        assert e.value.code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
