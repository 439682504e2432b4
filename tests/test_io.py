"""facesr.io: every file kind decodes to the tensor contract; bad files give one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facesr import io


def _rgb(h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_formats_round_trip(tmp_path: Path, ext: str) -> None:
    img = _rgb()
    path = tmp_path / f"a{ext}"
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    cv2.imwrite(str(path), img[..., ::-1], params)
    t = io.read_image(path)
    assert t.shape == (3, 24, 32) and t.dtype == torch.float32
    assert np.array_equal(io.to_uint8(io.to_array(t)), img)


def test_grey_16bit_and_alpha(tmp_path: Path) -> None:
    grey = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    a = io.read_image_array(tmp_path / "g16.png")
    assert a.shape == (24, 32, 3)
    assert np.allclose(a[..., 0], grey / 65535.0, atol=1e-6)
    assert np.array_equal(a[..., 0], a[..., 2])

    rgba = np.dstack([_rgb(), np.full((24, 32), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    b = io.read_image_array(tmp_path / "alpha.png")
    assert b.shape == (24, 32, 3)
    assert np.array_equal(io.to_uint8(b), rgba[..., :3])  # alpha dropped, colour untouched
    assert io.read_image_rgba(tmp_path / "alpha.png")[..., 3].max() == pytest.approx(7 / 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=95)
    a = io.read_image_array(tmp_path / "o.jpg")
    assert a.shape == (40, 20, 3)
    assert a[:20].mean() > 0.9 and a[20:].mean() < 0.1  # white half is now on top


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"not an image at all"), "cannot decode"),
        (lambda p: p.write_bytes(cv2.imencode(".png", _rgb())[1].tobytes()[:60]), "cannot decode"),
        (lambda p: cv2.imwrite(str(p), _rgb(4, 4)), "smaller than"),
    ],
    ids=["empty", "wrong-type", "truncated", "tiny"],
)
def test_bad_images_give_one_line_naming_the_file(tmp_path: Path, make, message) -> None:
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(io.InputError) as e:
        io.read_image(path)
    assert str(path) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_folder_and_huge(tmp_path: Path) -> None:
    with pytest.raises(io.InputError, match="not found"):
        io.read_image(tmp_path / "nope.png")
    with pytest.raises(io.InputError, match="folder"):
        io.read_image(tmp_path)
    cv2.imwrite(str(tmp_path / "big.png"), _rgb(100, 100))
    with pytest.raises(io.InputError, match="larger than"):
        io.read_image(tmp_path / "big.png", max_pixels=5000)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_a_tensor_encodes_to_the_bytes_of_its_array(ext: str) -> None:
    # the tensor fast path (uint8 made in torch) gives exactly the bytes of the array path
    t = torch.rand(3, 37, 29)
    t[:, 0, 0] = torch.tensor([-0.5, 1.5, 0.5 / 255])  # out of range and a rounding edge
    assert io.encode_image(t, ext) == io.encode_image(io.to_array(t), ext)
    assert io.encode_image(t[:, :, 3:20], ext) == io.encode_image(io.to_array(t)[:, 3:20], ext)


def test_write_image_is_atomic_and_lossless(tmp_path: Path) -> None:
    img = _rgb().astype(np.float32) / 255
    out = io.write_image(tmp_path / "sub" / "x.png", img)
    assert [p.name for p in out.parent.iterdir()] == ["x.png"]  # no temp file left
    assert out.stat().st_mode & 0o044  # readable by others, as a plain open() would make it
    assert np.array_equal(io.to_uint8(io.read_image_array(out)), io.to_uint8(img))
    out16 = io.write_image(tmp_path / "x16.png", img, bits=16)
    assert np.abs(io.read_image_array(out16) - img).max() < 1e-4


def test_the_atomic_writers_temporary_names_are_partial(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    renamed, replace = [], os.replace

    def spy(src: str, dst: str) -> None:
        renamed.append(Path(src).name)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    io.atomic_write_bytes(tmp_path / "a.json", b"{}")
    io.write_video(tmp_path / "v.mp4", [np.zeros((16, 16, 3), np.float32)], 5.0)
    assert len(renamed) == 2 and all(io.is_partial(name) for name in renamed), renamed
    for name in ("a.json", "v.mp4", ".notes.part", "mine.part", ".x.ABCDEFGH.part"):
        assert not io.is_partial(name)


def test_a_signal_handled_during_an_atomic_write_waits_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal the OS took just before the write has its Python handler run whenever the
    interpreter gets round to it, e.g. right after ``mkstemp``: the handler installed then must
    not raise (CI once saw SIGTERM leave a ``.part``); the original one runs after the write,
    and also when the write fails."""
    import signal
    import tempfile

    class Stop(Exception):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stop(signum)

    before = signal.signal(signal.SIGTERM, stop)
    real = tempfile.mkstemp

    def mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        made = real(*args, **kwargs)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # as Python runs a pending one
        return made

    try:
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        with pytest.raises(Stop):
            io.atomic_write_bytes(tmp_path / "a.json", b"{}")
        assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # whole, and no .part
        assert (tmp_path / "a.json").read_bytes() == b"{}"
        assert signal.getsignal(signal.SIGTERM) is stop
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk")))
        with pytest.raises(Stop):  # the write failed, and the signal is not lost
            io.atomic_write_bytes(tmp_path / "b.json", b"{}")
        assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    finally:
        signal.signal(signal.SIGTERM, before)


def _video(path: Path, n: int = 9) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
    for i in range(n):
        vw.write(np.full((24, 32, 3), i * 20, np.uint8))
    vw.release()


def test_video_frames_with_stride(tmp_path: Path) -> None:
    _video(tmp_path / "v.avi")
    frames = list(io.iter_video_frames(tmp_path / "v.avi", stride=3))
    assert [i for i, _ in frames] == [0, 3, 6]
    assert frames[1][1].shape == (24, 32, 3)
    assert abs(frames[1][1].mean() * 255 - 60) < 4  # frame 3 really is the 4th frame
    assert len(list(io.iter_video_frames(tmp_path / "v.avi", max_frames=2))) == 2


def test_gif_frames(tmp_path: Path) -> None:
    imgs = [Image.fromarray(np.full((24, 32, 3), v, np.uint8)) for v in (0, 120, 240)]
    imgs[0].save(tmp_path / "a.gif", save_all=True, append_images=imgs[1:], duration=100)
    frames = list(io.iter_video_frames(tmp_path / "a.gif"))
    assert len(frames) == 3


def test_unreadable_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(io.InputError) as e:
        list(io.iter_video_frames(bad))
    assert str(bad) in str(e.value)


def test_iter_sources_reports_errors_and_goes_on(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _rgb())
    (tmp_path / "b.png").write_bytes(b"junk")
    _video(tmp_path / "c.avi", n=4)
    (tmp_path / "d.mp4").write_bytes(b"junk")
    items = list(io.iter_sources([tmp_path], frame_stride=2))
    ok = [(it.path.name, it.frame) for it in items if it.error is None]
    bad = sorted(it.path.name for it in items if it.error is not None)
    assert ok == [("a.png", None), ("c.avi", 0), ("c.avi", 2)]
    assert bad == ["b.png", "d.mp4"]
    skipped = list(io.iter_sources([tmp_path / "c.avi"], skip={f"{tmp_path / 'c.avi'}#0"}))
    assert [it.frame for it in skipped] == [1, 2, 3]


def test_jsonl_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    io.append_jsonl(m, {"a": 1})
    with open(m, "a") as f:
        f.write('{"a": 2, "b"')  # a writer killed mid-line
    assert io.read_jsonl(m) == [{"a": 1}]
