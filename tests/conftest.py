"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# The suite sets its own thread count: on a busy 2-core machine OpenMP threads waiting for each
# other made one KernelGAN test take more than 6 minutes. Tests that start subprocesses pass
# the same environment on.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    if not os.environ.get(_var, "").strip().isdigit():
        os.environ[_var] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches (near-duplicate signatures) go to a folder of the test session, never ~/.cache."""
    monkeypatch.setenv("FACESR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))

_DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared"
SHARED = Path(os.environ.get("FACESR_SHARED", _DEFAULT))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder beside the project (data and third-party weights)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder at {SHARED.resolve()} (absent here)")
    return SHARED.resolve()


@pytest.fixture(scope="session")
def nearest(tmp_path_factory) -> Path:
    """A tiny x4 RRDBNet file that is exactly nearest-neighbour upscaling (RGB carried in 3
    channels, every other weight zero). Used by the command tests (tests/cli, tests/reliability).
    """
    import torch

    from facesr.models import RRDBNet, save_rrdb

    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for conv in (net.conv_first, net.conv_up1, net.conv_up2, net.conv_hr, net.conv_last):
            for c in range(3):
                conv.weight[c, c, 1, 1] = 1.0
    return save_rrdb(tmp_path_factory.mktemp("model") / "nearest.safetensors", net)


def make_video(path: Path, frames: int = 12, fps: int = 6, size: tuple[int, int] = (32, 24),
               audio: str | None = "aac", fmt: str | None = None) -> Path:
    """A tiny video written with PyAV: H.264 frames whose red level steps 20 per frame (and a
    green top-left quarter), plus a mono 16 kHz 440 Hz sine for the same time (``audio``: the
    codec, e.g. aac or pcm_s16le; None: no audio). ``fmt``: the container (default: by
    suffix)."""
    from fractions import Fraction

    import av
    import numpy as np

    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"crf": "10"}
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=16000)
            sound.layout = "mono"
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 0] = 20 * i
            img[: h // 2, : w // 2, 1] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            rate, n = 16000, frames * 16000 // fps
            wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
            fmt_name, step = sound.codec_context.format.name, sound.codec_context.frame_size or 1024
            for pos in range(0, n, step):
                chunk = wave[pos:pos + step][None]
                chunk = ((chunk * 32767).astype(np.int16) if fmt_name == "s16"
                         else chunk.astype(np.float32))
                a = av.AudioFrame.from_ndarray(chunk, format=fmt_name, layout="mono")
                a.sample_rate, a.pts, a.time_base = rate, pos, Fraction(1, rate)
                out.mux(sound.encode(a))
            out.mux(sound.encode(None))
    return path


@pytest.fixture
def tiny_video():
    """``make_video``: tiny H.264 videos with (or without) audio, for the video tests."""
    return make_video


@pytest.fixture()
def browser(tmp_path: Path):
    """(driver, downloads): headless Chromium through Selenium for the page tests (study,
    app, adapt report), downloads going to ``tmp_path/downloads`` without asking; quit at
    teardown. Needs Debian's ``chromium`` and ``chromium-driver`` (or ``FACESR_CHROMIUM`` /
    ``FACESR_CHROMEDRIVER``) and the ``selenium`` client, and skips without them. Selenium is
    given both paths and ``SE_OFFLINE``, so Selenium Manager downloads nothing."""
    import shutil

    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="needs the selenium client: pip install selenium")
    chromium = os.environ.get("FACESR_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    chromedriver = os.environ.get("FACESR_CHROMEDRIVER") or shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("needs Chromium and its driver: apt-get install -y chromium "
                    "chromium-driver (or set FACESR_CHROMIUM and FACESR_CHROMEDRIVER)")
    os.environ.setdefault("SE_OFFLINE", "true")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=chromedriver),
                              options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


def blurred_discs(degrees: float, sx: float = 4.0, sy: float = 1.0, seed: int = 0,
                  size: int = 512) -> np.ndarray:
    """Overlapping flat discs of random grey (step edges in every direction) blurred by an
    anisotropic Gaussian at ``degrees`` and taken x4 down: (size/4, size/4, 3) float in [0, 1]."""
    import math

    from facesr.degrade.kernels import blur_downsample, gaussian_kernel

    rng = np.random.default_rng(seed)
    img = np.full((size, size), 0.5, np.float32)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(400):
        r = rng.uniform(8, 60)
        cy, cx = rng.uniform(0, size, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random()
    hr = torch.from_numpy(img).expand(3, -1, -1).contiguous()
    k = gaussian_kernel(25, sx, sy, math.radians(degrees))
    return blur_downsample(hr, k, 4).clamp(0, 1).permute(1, 2, 0).numpy()


@pytest.fixture(scope="session")
def step_edges():
    """:func:`blurred_discs`, for tests of the edge reading."""
    return blurred_discs
