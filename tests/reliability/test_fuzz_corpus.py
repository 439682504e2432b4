"""A corpus of bad (and odd but good) inputs, model files and config files, built in a temporary
folder. Every bad file gets one line naming it and no traceback, the batch goes on, nothing is
half-written, inputs are unchanged, and a re-run resumes. Also the cap on whole x4 outputs."""

from __future__ import annotations

import json
import os
import pickle
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from typer.testing import CliRunner

from facesr.cli import app
from facesr.infer import pipeline
from facesr.io import encode_image, read_image_array, sha256_file, write_image
from facesr.io import write_video as io_write_video

runner = CliRunner()
Truth = list[np.ndarray] | None  # the decoded stills of a good input (RGB HWC), None: bad


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random RGB image (JPEG keeps it close; nearest x4 of it is easy to check)."""
    coarse = np.random.default_rng(seed).random((4, 4, 3), dtype=np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def _u8(a: np.ndarray) -> np.ndarray:
    return (a * 255 + 0.5).astype(np.uint8)


def _png_header(p: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h px and holds no pixels (nothing big is allocated)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0,
                                                                    0, 0))
                  + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _decoded(p: Path) -> Truth:
    """Every frame of an image file as Pillow decodes it, RGB."""
    with Image.open(p) as im:
        return [np.asarray(f.convert("RGB"), np.float32) / 255
                for f in ImageSequence.Iterator(im)]


def _good(p: Path, seed: int = 0) -> Truth:
    write_image(p, _smooth(24, 32, seed))
    return _decoded(p)


def _raw(data: bytes) -> Callable[[Path], Truth]:
    def make(p: Path) -> Truth:
        p.write_bytes(data)
        return None

    return make


def _half(p: Path, data: bytes) -> Truth:
    return _raw(data[: len(data) // 2])(p)


def _deep16(p: Path) -> Truth:
    img = _smooth(20, 28, 2)
    cv2.imwrite(str(p), (img[..., ::-1] * 65535 + 0.5).astype(np.uint16))
    return [img]


def _cmyk(p: Path) -> Truth:
    Image.fromarray(_u8(_smooth(24, 24, 3))).convert("CMYK").save(p, quality=98)
    return _decoded(p)


def _palette_alpha(p: Path) -> Truth:
    im = Image.fromarray(_u8(_smooth(24, 24, 4))).quantize(colors=16)
    im.save(p, transparency=int(np.asarray(im)[0, 0]))  # the top-left colour is transparent
    return _decoded(p)


def _gif(p: Path) -> Truth:
    frames = [Image.fromarray(_u8(_smooth(24, 24, k))) for k in range(3)]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return _decoded(p)


def _loop(p: Path) -> Truth:
    p.symlink_to(p)
    return None


def _folder(p: Path) -> Truth:
    p.mkdir()
    return _good(p / "inner.png", 5)


def _mp4_head(p: Path) -> Truth:
    full = p.with_name("full.mp4.tmp")
    io_write_video(full, [_smooth(32, 32, k) for k in range(5)], 5.0)
    p.write_bytes(full.read_bytes()[:2048])
    full.unlink()
    return None


@dataclass(frozen=True)
class Case:
    name: str  # the file (or folder) given to `facesr upscale`
    make: Callable[[Path], Truth]
    error: str | None = None  # the reason on its one error line; None: a good input


CASES = [
    Case("good.png", _good),
    Case("good.jpg", lambda p: _good(p, 1)),
    Case("empty.png", _raw(b""), "file is empty (0 bytes)"),
    Case("truncated.png", lambda p: _half(p, encode_image(_smooth(24, 24, 6), ".png")),
         "cannot decode image"),
    Case("truncated.jpg", lambda p: _half(p, encode_image(_smooth(24, 24, 7), ".jpg")),
         "cannot decode image"),
    Case("text.png", _raw(b"not an image\n"), "cannot decode image"),
    Case("bomb.png", lambda p: _png_header(p, 60000, 60000), "larger than the 100 MP limit"),
    Case("big.png", lambda p: _png_header(p, 5000, 5000),
         "the x4 output of this 5000x5000 px input would be 20000x20000 px (400 MP), over the "
         "140 MP limit; downscale it"),
    Case("tiny.png", lambda p: Image.new("RGB", (2, 2)).save(p),
         "image 2x2 px is smaller than the 8 px minimum"),
    Case("deep16.png", _deep16),
    Case("cmyk.jpg", _cmyk),
    Case("palette.png", _palette_alpha),
    Case("anim.gif", _gif),
    Case("visage_é_顔.png", lambda p: _good(p, 8)),
    Case("-dash.png", lambda p: _good(p, 9)),
    Case("loop.png", _loop, "symbolic link loop"),
    Case("album.jpg", _folder),  # a folder named like an image is searched like any folder
    Case("random.mp4", _raw(np.random.default_rng(0).bytes(4096)), "cannot open video"),
    # write_video puts the index first (+faststart): the head opens, but no frame is whole
    Case("head.mp4", _mp4_head, "video has no readable frames"),
]
BAD = [c for c in CASES if c.error]
GOOD = [c for c in CASES if not c.error]


@dataclass
class Batch:
    src: Path
    out: Path
    truths: dict[str, Truth]
    first: str
    again: str
    exit_codes: tuple[int, int]
    hashes: tuple[dict[str, str], dict[str, str]]
    stamps: tuple[dict[str, int], dict[str, int]]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


@pytest.fixture(scope="module")
def batch(tmp_path_factory, nearest) -> Batch:
    """Every case in one `facesr upscale --mode face` run, given by name after `--` (so
    '-dash.png' is a file, not an option), then the same run again."""
    src, out = tmp_path_factory.mktemp("corpus"), tmp_path_factory.mktemp("sr") / "out"
    truths = {c.name: c.make(src / c.name) for c in CASES}
    before = _hashes(src)
    args = ["upscale", "--out", str(out), "--model", str(nearest), "--mode", "face",
            "--ext", "png", "--",  # lossless outputs: their pixels are compared
            *(c.name for c in CASES)]
    with pytest.MonkeyPatch.context() as m:
        m.chdir(src)
        first = runner.invoke(app, args)
        stamps = _stamps(out)
        again = runner.invoke(app, args)
    for r in (first, again):  # the command ended itself: no exception reached the user
        assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return Batch(src, out, truths, first.output, again.output,
                 (first.exit_code, again.exit_code), (before, _hashes(src)),
                 (stamps, _stamps(out)))


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))]


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_a_bad_input_is_one_line_naming_it_in_both_runs(batch: Batch, case: Case) -> None:
    for output in (batch.first, batch.again):
        lines = [ln for ln in output.splitlines() if case.name in ln]
        assert len(lines) == 1, output
        assert lines[0].startswith("error ") and case.error in lines[0], lines[0]


@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_an_odd_but_good_input_is_upscaled_faithfully(batch: Batch, case: Case) -> None:
    where = batch.src / case.name
    recs = sorted((r for r in _records(batch.out) if r["input"]["path"] == str(where)
                   or r["input"]["path"].startswith(f"{where}{os.sep}")),
                  key=lambda r: r["input"]["frame"] or 0)
    truth = batch.truths[case.name]
    assert len(recs) == len(truth), batch.first
    for rec, want in zip(recs, truth, strict=True):
        (output,) = rec["outputs"]
        got = read_image_array(batch.out / output["file"])
        nearest_x4 = want.repeat(4, 0).repeat(4, 1)
        assert got.shape == nearest_x4.shape
        assert np.abs(got - nearest_x4).mean() < 0.01, case.name  # right colours, depth, frame
    if case.name == "palette.png":
        assert recs[0]["input"]["notes"] == ["alpha channel ignored"]


def test_the_batch_goes_on_leaves_nothing_half_written_and_resumes(batch: Batch) -> None:
    stills = sum(len(t) for t in batch.truths.values() if t)
    assert batch.exit_codes == (1, 1)
    assert "Traceback" not in batch.first + batch.again
    assert f"{stills} images/frames done, 0 skipped, {len(BAD)} failed" in batch.first
    assert f"0 images/frames done, {stills} skipped, {len(BAD)} failed" in batch.again
    assert batch.hashes[0] == batch.hashes[1]  # inputs unchanged
    assert batch.stamps[0] == batch.stamps[1]  # nothing redone
    named = {o["file"] for r in _records(batch.out) for o in r["outputs"]}
    files = {p.name for p in batch.out.iterdir()}
    assert not [n for n in files if ".part" in n]  # nothing half-written
    assert files == named | {p.name for p in batch.out.glob("*.json")}  # no stray file


# ----------------------------------------------------------------------------- model files
def _pickled(p: Path, marker: Path, *, zipped: bool) -> None:
    class Payload:  # unpickling calls open(marker, "w"): the marker shows it ran
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state = {"conv_first.weight": Payload()}
    if zipped:
        torch.save(state, p)
    else:
        p.write_bytes(pickle.dumps(state))


MODELS = {
    "pickle.pth": ([], "not a plain state dict",
                   lambda p, m: _pickled(p, m, zipped=False)),
    "torch.pth": ([], "not a plain state dict", lambda p, m: _pickled(p, m, zipped=True)),
    "huge.safetensors": ([], "not a readable safetensors file",
                         lambda p, m: p.write_bytes(struct.pack("<Q", 2**62) + b"{}")),
    "short.safetensors": ([], "not a readable safetensors file",
                          lambda p, m: p.write_bytes(struct.pack("<Q", 1000) + b'{"a":')),
    "bad.onnx": (["--backend", "onnx"], "onnxruntime cannot load it",
                 lambda p, m: p.write_bytes(b"\x08\x07not a protobuf" * 40)),
}


def _upscale_with(tmp_path: Path, model: Path, *extra: str):
    _good(tmp_path / "in" / "a.png")
    return runner.invoke(app, ["upscale", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                               "--model", str(model), *extra],
                         env={"COLUMNS": "1000"})  # typer's error box: one line per message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # see the test after this one
@pytest.mark.parametrize("name", list(MODELS))
def test_a_bad_model_file_is_one_line_and_never_runs_code(tmp_path: Path, name: str) -> None:
    extra, reason, make = MODELS[name]
    if name.endswith(".onnx"):
        pytest.importorskip("onnxruntime", reason="the onnx backend needs onnxruntime")
    marker, model = tmp_path / "payload-ran", tmp_path / name
    make(model, marker)
    r = _upscale_with(tmp_path, model, *extra)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if name in ln]
    assert len(lines) == 1 and reason in lines[0], r.output
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_protocol_4_pickle_is_refused_without_torch_warnings(tmp_path: Path) -> None:
    model = tmp_path / "pickle.pth"
    _pickled(model, tmp_path / "payload-ran", zipped=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = _upscale_with(tmp_path, model)
    assert r.exit_code == 2 and not [str(w.message) for w in caught]


# ----------------------------------------------------------------------------- config files
def _evil_yaml(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"train: !!python/object/apply:builtins.open ['{marker}', 'w']\n",
                      encoding="utf-8")
    return config, marker


def test_a_python_tag_in_a_yaml_config_is_refused_not_run(tmp_path: Path) -> None:
    config, marker = _evil_yaml(tmp_path)
    r = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output.startswith(f"error {config}: not valid YAML")
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_yaml_error_is_one_line(tmp_path: Path) -> None:
    config, _ = _evil_yaml(tmp_path)
    r = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    assert len(r.output.strip().splitlines()) == 1, r.output


def test_malformed_json_is_one_line_and_the_rest_is_scored(tmp_path: Path) -> None:
    from facesr.study import plan_study

    study = plan_study(["face0", "face1"], ["bicubicq", "esrganzz", "oursxmodel"],
                       np.random.default_rng(0), study_id="s1")
    key, good, broken = tmp_path / "key.json", tmp_path / "good.json", tmp_path / "broken.json"
    key.write_text(json.dumps(study.to_key()))
    good.write_text(json.dumps({
        "format": "facesr-study-rankings", "version": 1, "study": "s1", "rater": "ann",
        "rankings": [{"image": it.image, "ranking": list(it.tokens)} for it in study.items]}))
    broken.write_text(good.read_text()[:40])
    r = runner.invoke(app, ["study", "score", str(broken), str(good), "--key", str(key)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if "broken.json" in ln]
    assert len(lines) == 1 and "not valid JSON (" in lines[0], r.output
    assert "1 ranking files done, 0 skipped, 1 failed" in r.output
    key.write_text('{"study": ')
    r = runner.invoke(app, ["study", "score", str(good), "--key", str(key)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output.strip().splitlines() == [f"error {key}: Expecting value: line 1 column 11 "
                                             "(char 10)"]


# ----------------------------------------------------------------------------- x4 output cap
def test_frame_mode_refuses_a_whole_x4_frame_over_the_cap_from_its_header(tmp_path: Path,
                                                                          nearest: Path) -> None:
    big = tmp_path / "in" / "big.png"
    big.parent.mkdir()
    _png_header(big, 5000, 5000)  # no pixels: any decode would fail with another message
    for mode, hint in (("frame", "pass --no-save-frame to write the face crops only"),
                       ("auto", "pass --mode frame --no-save-frame")):
        r = runner.invoke(app, ["upscale", str(big), "--out", str(tmp_path / "out"),
                                "--model", str(nearest), "--mode", mode])
        assert r.exit_code == 1 and f"error {big}: the x4 output" in r.output, r.output
        assert "over the 140 MP limit; " + hint in r.output.replace("\n", "")
    r = runner.invoke(app, ["upscale", str(big), "--out", str(tmp_path / "out"), "--model",
                            str(nearest), "--mode", "frame", "--no-save-frame"])
    assert r.exit_code == 1 and f"error {big}: cannot decode image" in r.output, r.output


def test_video_frames_over_the_cap_are_refused_before_decoding(tmp_path: Path, nearest: Path,
                                                               monkeypatch) -> None:
    clip = io_write_video(tmp_path / "in" / "clip.mp4", [_smooth(32, 40, k) for k in range(2)],
                          5.0)
    monkeypatch.setattr(pipeline, "MAX_OUTPUT_PIXELS", 16 * 40 * 32 - 1)
    args = ["upscale", str(clip), "--out", str(tmp_path / "out"), "--model", str(nearest)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "would be 160x128 px" in r.output, r.output
    assert "over the 0.020479 MP limit; pass --mode frame --no-save-frame" in r.output
    assert "0 images/frames done, 0 skipped, 1 failed" in r.output
    r = runner.invoke(app, [*args, "--no-save-frame"])  # face crops only: no whole x4 frame
    assert r.exit_code == 0 and "2 images/frames done" in r.output, r.output


def test_the_library_refuses_an_output_over_the_cap_before_any_work(monkeypatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("work was done before the size check")

    class Refuse:
        detect = staticmethod(refuse)

    image = torch.rand(3, 9, 11)
    monkeypatch.setattr(pipeline, "MAX_OUTPUT_PIXELS", 16 * 9 * 11 - 1)
    with pytest.raises(ValueError, match=r"would be 44x36 px .* MP limit; downscale it"):
        pipeline.upscale_face(image, refuse)
    with pytest.raises(ValueError, match="pass whole_frame=False for the face crops only"):
        pipeline.upscale_frame(image, refuse, Refuse())
    assert pipeline.upscale_frame(image, refuse, None, faces=[], whole_frame=False).faces == []
    monkeypatch.setattr(pipeline, "MAX_OUTPUT_PIXELS", 16 * 9 * 11)  # at the limit: allowed
    up = lambda x: x.repeat_interleave(4, -1).repeat_interleave(4, -2)  # noqa: E731
    assert pipeline.upscale_face(image, up).shape == (3, 36, 44)
