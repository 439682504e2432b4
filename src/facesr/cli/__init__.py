"""The ``facesr`` command. Each command lives in its own module; this file wires them up."""

from __future__ import annotations

import os

import cv2
import typer

from facesr.cli import (
    adapt,
    curate,
    demo,
    evaluate,
    export,
    faces,
    kernels,
    models,
    noise,
    pairs,
    pool_show,
    study,
    train,
    upscale,
    verify,
)
from facesr.cli.app import app as _app  # the module is named app: kept apart from the Typer

# Decoders report damaged files in FFmpeg's and OpenCV's own logs, raw and straight to stderr;
# the commands report such files themselves (one line naming the file), so the CLI silences
# those logs. FFmpeg reads its level when the first video is opened, so this is early enough;
# values set in the environment win (OPENCV_FFMPEG_LOGLEVEL=24 shows FFmpeg's warnings).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# Plain (click) help: it wraps to any terminal, where rich's option tables crop option names
# and help words at 80 columns.
HELP = {"rich_markup_mode": None}

app = typer.Typer(
    **HELP,
    name="facesr",
    help="x4 super-resolution of real low-quality faces from surveillance cameras.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

faces_app = typer.Typer(**HELP, help="Find faces in images and footage.", no_args_is_help=True)
faces_app.command("extract")(faces.extract)
app.add_typer(faces_app, name="faces")

pool_app = typer.Typer(**HELP, help="Build the degradation pools from source footage.",
                       no_args_is_help=True)
pool_app.command("kernels")(kernels.kernels)
pool_app.command("noise")(noise.noise)
pool_app.command("show")(pool_show.show)
app.add_typer(pool_app, name="pool")

data_app = typer.Typer(**HELP, help="Prepare target (clean, high-quality) face data.",
                       no_args_is_help=True)
data_app.command("curate")(curate.curate)
app.add_typer(data_app, name="data")

models_app = typer.Typer(**HELP, help="Bring model weights into facesr's format.",
                         no_args_is_help=True)
models_app.command("import-ncnn")(models.import_ncnn)
models_app.command("pack")(models.pack)
models_app.command("interpolate")(models.interpolate)
app.add_typer(models_app, name="models")

export_app = typer.Typer(**HELP, help="Export models for other runtimes.", no_args_is_help=True)
export_app.command("onnx")(export.onnx)
app.add_typer(export_app, name="export")

evaluate_app = typer.Typer(**HELP, help="Benchmark methods on synthetic or real faces.",
                           no_args_is_help=True)
evaluate_app.command("synthetic")(evaluate.synthetic)
evaluate_app.command("real")(evaluate.real)
app.add_typer(evaluate_app, name="evaluate")

study_app = typer.Typer(**HELP, help="Blind ranking studies of SR outputs (Mean Opinion Rank).",
                        no_args_is_help=True)
study_app.command("create")(study.create)
study_app.command("score")(study.score)
app.add_typer(study_app, name="study")

app.command("upscale")(upscale.upscale)
app.command("verify")(verify.verify)
app.command("pairs")(pairs.pairs)
app.command("demo")(demo.demo)
app.command("train")(train.train)
app.command("adapt")(adapt.adapt)
app.command("app")(_app)


def main() -> None:
    app()
