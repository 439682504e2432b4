"""Chain of custody: upscale's provenance record, metadata in every output, ``facesr verify``."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facesr import imagemeta, provenance
from facesr.cli import app
from facesr.cli.upscale.model import _model_record
from facesr.infer.pipeline import NOTICE
from facesr.io import encode_image, write_image

runner = CliRunner()
VERSION = importlib.metadata.version("facesr")


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _upscale(src: Path, out: Path, model: Path, *args: str):
    r = runner.invoke(app, ["upscale", str(src), "--out", str(out), "--model", str(model),
                            "--mode", "face", *args])
    assert r.exit_code == 0, r.output
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def _verify(out: Path, *args: str):
    return runner.invoke(app, ["verify", str(out), *args])


def _lines(r, name: str) -> list[str]:
    """stdout lines that name ``name`` (each problem is one line)."""
    return [line for line in r.stdout.splitlines() if name in line]


@pytest.fixture(scope="module")
def made(tmp_path_factory, nearest) -> Path:
    """An upscale output folder of two stills (PNG), made once; tests work on copies."""
    root = tmp_path_factory.mktemp("made")
    for k in range(2):
        write_image(root / "in" / f"still{k}.png", _noise(16, 20, k))
    _upscale(root / "in", root / "out", nearest)
    return root / "out"


@pytest.fixture
def out(made, tmp_path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "out"))


def _record(out: Path, stem: str) -> tuple[Path, dict]:
    path = out / f"{stem}.json"
    return path, json.loads(path.read_text())


# ----------------------------------------------------------------------------- the record
def test_the_record_holds_provenance_and_the_outputs_hashes(tmp_path, nearest, monkeypatch):
    write_image(tmp_path / "in" / "a.png", _noise(12, 14))
    monkeypatch.chdir(tmp_path)
    before = datetime.now(UTC) - timedelta(seconds=1)
    (rec,) = _upscale(Path("in"), tmp_path / "out", Path(os.path.relpath(nearest))).values()
    prov = rec["provenance"]
    assert prov["facesr"] == VERSION and list(rec)[:2] == ["notice", "provenance"]
    assert prov["time_utc"].endswith("Z")
    when = datetime.fromisoformat(prov["time_utc"])
    assert when.tzinfo is not None and before <= when <= datetime.now(UTC)
    assert isinstance(prov["argv"], list) and all(isinstance(a, str) for a in prov["argv"])
    assert prov["cwd"] == str(tmp_path)
    libs = prov["libraries"]
    assert {"python", "torch", "opencv", "onnxruntime", "numpy"} <= set(libs)
    assert libs["torch"] and libs["opencv"] == cv2.__version__ and libs["numpy"] == np.__version__
    git = prov["git"]  # tests run from a checkout (or an install: None)
    assert git is None or (git["commit"] is None or len(git["commit"]) == 40)
    for o in rec["outputs"]:
        data = (tmp_path / "out" / o["file"]).read_bytes()
        assert o["sha256"] == hashlib.sha256(data).hexdigest()
    # the model as given (a relative path) is recorded absolute and resolved
    assert rec["model"]["path"] == str(nearest.resolve())
    assert list(rec["model"]["files"]) == [str(nearest.resolve())]


def test_a_model_file_is_recorded_with_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "m.onnx").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)

    class Info:  # as load_onnx makes it: the path as given
        def record(self) -> dict:
            return {"name": "m.onnx", "sha256": "0" * 64, "files": {"m.onnx": "0" * 64}}

    rec = _model_record(Info(), "m.onnx")
    assert rec["path"] == str(tmp_path / "m.onnx")
    assert rec["files"] == {str(tmp_path / "m.onnx"): "0" * 64}


def test_git_facts_come_from_the_repository_files_and_never_need_git(tmp_path, monkeypatch):
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/work\n")
    (git / "packed-refs").write_text("# pack-refs\n" + "ab" * 20 + " refs/heads/work\n")
    monkeypatch.setattr(provenance, "checkout_root", lambda: tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no git program
    provenance.git_info.cache_clear()
    try:
        assert provenance.git_info() == {"commit": "ab" * 20, "branch": "work", "dirty": None}
        (git / "refs" / "heads" / "work").write_text("cd" * 20 + "\n")  # loose ref wins
        provenance.git_info.cache_clear()
        assert provenance.git_info()["commit"] == "cd" * 20
        monkeypatch.setattr(provenance, "checkout_root", lambda: None)  # an installed facesr
        provenance.git_info.cache_clear()
        assert provenance.git_info() is None
    finally:
        provenance.git_info.cache_clear()


# ----------------------------------------------------------------------------- image metadata
@pytest.mark.parametrize("fmt", ["png", "jpg", "tif", "webp"])
def test_every_output_carries_the_notice_version_and_its_record(tmp_path, nearest, fmt):
    write_image(tmp_path / "in" / "a.png", _noise(12, 14))
    ((name, rec),) = _upscale(tmp_path / "in", tmp_path / "out", nearest, "--ext",
                              fmt).items()
    (o,) = rec["outputs"]
    path = tmp_path / "out" / o["file"]
    meta = imagemeta.read_text(path)
    assert meta[provenance.DISCLAIMER] == NOTICE
    assert meta[provenance.SOFTWARE] == f"facesr {VERSION}"
    assert meta[provenance.RECORD] == name
    assert meta[provenance.INPUT_SHA256] == rec["input"]["sha256"]
    assert meta[provenance.MODEL_SHA256] == rec["model"]["sha256"]
    with Image.open(path) as im:  # other tools see it where they look for it
        im.load()
        seen = {"png": lambda: im.text.get("Disclaimer"),
                "jpg": lambda: json.loads(im.info["comment"])["Disclaimer"],
                "tif": lambda: json.loads(im.tag_v2[270])["Disclaimer"],
                "webp": lambda: json.loads(im.getexif()[270])["Disclaimer"]}[fmt]()
    assert seen == NOTICE
    assert _verify(tmp_path / "out").exit_code == 0


@pytest.mark.parametrize("ext,bits", [(".png", 8), (".png", 16), (".jpg", 8), (".tif", 8),
                                      (".tif", 16), (".webp", 8)])
def test_metadata_leaves_the_pixels_alone_and_reads_back(ext, bits):
    img = _noise(9, 13, 3)
    text = {"Disclaimer": NOTICE, "facesr.record": "név_ü€.json"}  # non-Latin-1: PNG iTXt
    data = encode_image(img, ext, bits=bits, metadata=text)
    plain = encode_image(img, ext, bits=bits)
    assert imagemeta.read_text(data) == text and imagemeta.read_text(plain) == {}
    decode = lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED)  # noqa: E731
    assert np.array_equal(decode(data), decode(plain))
    with pytest.raises(ValueError, match="metadata"):
        encode_image(img, ".bmp", metadata=text)


def test_reading_metadata_of_damaged_files_never_raises():
    png = encode_image(_noise(9, 9), ".png", metadata={"k": "v"})
    webp = encode_image(_noise(9, 9), ".webp", metadata={"k": "v"})
    for data in (b"", b"\x89PNG\r\n\x1a\n\xff\xff\xff\xff", png[:40], b"\xff\xd8\xff\xfe\xff",
                 b"II*\x00\xff\xff\xff\xff", b"MM\x00*\x00\x00\x00\x08\xff\xff",
                 b"RIFF\xff\xff\xff\xffWEBP", webp[:-10], webp[:30] + b"EXIF\xff\xff\xff\x7f"):
        assert isinstance(imagemeta.read_text(data), dict)
    assert imagemeta.read_text(io.BytesIO().getvalue()) == {}


# ----------------------------------------------------------------------------- facesr verify
def test_verify_passes_on_a_fresh_run(out):
    r = _verify(out)
    assert r.exit_code == 0, r.output
    assert "2 record(s), 2 output(s)" in r.stdout and "2 ok; 0 unclaimed" in r.stdout
    r = _verify(out, "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["ok"] and doc["problems"] == []
    assert [s["status"] for s in doc["stills"]] == ["ok", "ok"]


def test_verify_reports_a_changed_byte(out):
    _, rec = _record(out, "still0")
    name = rec["outputs"][0]["file"]
    data = bytearray((out / name).read_bytes())
    data[-20] ^= 1  # in the last IDAT chunk: the pixels, not the metadata
    (out / name).write_bytes(bytes(data))
    r = _verify(out)
    assert r.exit_code == 1
    (line,) = _lines(r, name)
    assert line.startswith(f"{name}: changed")
    assert "1 ok, 1 changed" in r.stdout


def test_verify_reports_a_deleted_output(out):
    _, rec = _record(out, "still1")
    name = rec["outputs"][0]["file"]
    (out / name).unlink()
    r = _verify(out)
    assert r.exit_code == 1
    (line,) = _lines(r, name)
    assert line.startswith(f"{name}: missing")
    doc = json.loads(_verify(out, "--json").stdout)
    assert sorted(s["status"] for s in doc["stills"]) == ["missing", "ok"]


def test_verify_reports_an_image_no_record_claims(out):
    write_image(out / "planted.png", _noise(16, 16))
    r = _verify(out)
    assert r.exit_code == 1
    (line,) = _lines(r, "planted.png")
    assert line == "planted.png: no record claims this image"
    assert "2 ok; 1 unclaimed image(s)" in r.stdout


def test_verify_reports_a_corrupt_record(out):
    path, rec = _record(out, "still0")
    path.write_text(path.read_text()[:100])
    (out / "notes.json").write_text('{"not": "a record"}')  # other JSON: skipped
    r = _verify(out)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit | None)  # no traceback
    (line,) = [x for x in _lines(r, path.name) if x.startswith(path.name)]
    assert line.startswith(f"{path.name}: unreadable record (not valid JSON")
    image = rec["outputs"][0]["file"]  # its image is now claimed by no readable record
    assert _lines(r, image) == [f"{image}: no readable record claims this image "
                                f"({path.name} is not one)"]
    assert "notes.json" not in r.stdout


def test_verify_never_reads_outside_the_folder(out, tmp_path):
    secret = tmp_path / "secret.png"
    write_image(secret, _noise(16, 16))
    path, rec = _record(out, "still0")
    good = rec["outputs"][0]["file"]
    rec["outputs"] = [{**rec["outputs"][0], "file": "../secret.png"},
                      {**rec["outputs"][0], "file": str(secret)},
                      {**rec["outputs"][0], "file": "line\nbreak.png"}]
    path.write_text(json.dumps(rec))
    path1, rec1 = _record(out, "still1")
    link = out / "link_x4.png"
    link.symlink_to(secret)
    rec1["outputs"].append({**rec1["outputs"][0], "file": link.name})
    path1.write_text(json.dumps(rec1))
    r = _verify(out)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit | None)
    assert _lines(r, "'../secret.png'") == [f"{path.name}: lists '../secret.png', which is not "
                                            f"a file name in {out.resolve()} (not read)"]
    assert len(_lines(r, f"lists {str(secret)!r}")) == 1
    assert len(_lines(r, "'line\\nbreak.png'")) == 1  # a hostile name stays on one line
    (line,) = _lines(r, "link_x4.png")
    assert line.startswith("link_x4.png: a link that leads out of")
    assert _lines(r, good) == [f"{good}: no record claims this image"]
    doc = json.loads(_verify(out, "--json").stdout)
    assert [s["status"] for s in doc["stills"]] == ["outside", "outside"]


def test_verify_checks_the_record_against_each_output(out):
    path, rec = _record(out, "still0")
    rec["input"]["sha256"] = "0" * 64  # the record edited; the image still says the truth
    path.write_text(json.dumps(rec))
    renamed = out / "copy_00000000.json"  # a record copied under another name
    shutil.copy(_record(out, "still1")[0], renamed)
    r = _verify(out)
    assert r.exit_code == 1
    name = rec["outputs"][0]["file"]
    (line,) = _lines(r, f"{path.name} in")
    assert line == (f"{name}: its metadata differs from {path.name} in facesr.input_sha256; the "
                    "record was changed, renamed or copied")
    assert len(_lines(r, f"from {renamed.name} in facesr.record")) == 1


def test_verify_of_something_that_is_not_an_output_folder(tmp_path):
    r = _verify(tmp_path / "nope")
    assert r.exit_code == 2 and "not a folder" in r.output
    (tmp_path / "empty").mkdir()
    r = _verify(tmp_path / "empty")
    assert r.exit_code == 1 and "no facesr records here" in r.stdout


def test_verify_checks_the_mirrored_subfolders_and_names_files_by_their_path(tmp_path, nearest):
    for k, sub in enumerate(("cam1", "cam1/day", "cam2")):
        write_image(tmp_path / "in" / sub / f"s{k}.png", _noise(12, 14, k))
    out = tmp_path / "out"
    runner.invoke(app, ["upscale", "-i", str(tmp_path / "in"), "-o", str(out), "-n",
                        str(nearest), "--mode", "face", "--save-lr"])
    r = _verify(out)
    assert r.exit_code == 0 and "3 record(s), 6 output(s)" in r.stdout, r.output
    victim = out / "cam1" / "day" / "s1_x4.png"
    data = bytearray(victim.read_bytes())
    data[-20] ^= 1
    victim.write_bytes(bytes(data))
    write_image(out / "cam2" / "planted.png", _noise(8, 8))
    (out / ".s9_x4.frames").mkdir()  # a --save-video frame store: not searched
    write_image(out / ".s9_x4.frames" / "000000.png", _noise(8, 8))
    r = _verify(out)
    assert r.exit_code == 1
    assert _lines(r, "s1_x4.png")[0].startswith("cam1/day/s1_x4.png: changed (its SHA-256 "
                                                "is not the one cam1/day/s1.json holds)")
    assert _lines(r, "planted") == ["cam2/planted.png: no record claims this image"]
    assert "000000.png" not in r.stdout
