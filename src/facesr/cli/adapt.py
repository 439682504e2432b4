"""``facesr adapt``: a camera's footage in, its profile and adapted model out (``facesr.adapt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from facesr.cli._common import err, out, progress, setup_logging

KernelPrior = Literal["default", "thin"]  # facesr.degrade.kernelgan.PRESETS
Precision = Literal["auto", "fp32", "bf16"]  # facesr.adapt.finetune.training_precision
KernelAngle = Literal["kernelgan", "edges"]  # facesr.adapt.profile.KERNEL_ANGLES


def adapt(
    footage: Annotated[list[Path], typer.Argument(
        help="Videos, frames or folders from one camera.", metavar="FOOTAGE")],
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Camera folder to write (re-run the same command to resume it).",
        show_default=False)],
    hq: Annotated[list[Path] | None, typer.Option(
        "--hq", help="Clean target faces (images, folders, .txt lists; repeatable). Default: "
                     "$FACESR_FACES, else ../shared/data/faces_hq's London (neutral) and "
                     "Canada sets beside a checkout.", show_default=False)] = None,
    base: Annotated[str, typer.Option(
        help="Model to fine-tune: a zoo name (facesr-rrdb23, realesrgan-x4plus...) or a "
             "weights file.")] = "facesr-default",
    minutes: Annotated[float, typer.Option(
        min=0.1, help="Training budget in minutes (a re-run with a larger one continues).")
    ] = 30.0,
    iterations: Annotated[int | None, typer.Option(
        min=1, help="Train exactly N iterations instead of --minutes (reproducible).",
        show_default=False)] = None,
    kernel_stills: Annotated[int, typer.Option(
        min=1, help="Stills to estimate blur kernels from (spread over the footage).")] = 6,
    kernel_prior: Annotated[KernelPrior, typer.Option(
        help="KernelGAN setting: default (~50 CPU s a still) or thin (64 px crops, no "
             "bicubic phase, a sparsity prior, 6000 iterations: 4-7x the time; closer on "
             "thin anisotropic blur, farther on round or wide blur; README).")] = "default",
    iters: Annotated[int | None, typer.Option(
        min=1, help="KernelGAN iterations per still (default: 3000; 6000 with "
                    "--kernel-prior thin).",
        show_default=False)] = None,
    kernel_angle: Annotated[KernelAngle, typer.Option(
        help="Direction of the blur: kernelgan (as estimated) or edges (elongated kernels "
             "turned to the direction the footage's step edges agree on, when they do; for "
             "scenes with buildings, signs, object rims, not textures; README). The report "
             "shows the edges' reading either way.")] = "kernelgan",
    jobs: Annotated[int | None, typer.Option(
        min=1, help="KernelGAN runs in parallel (default: one per core).",
        show_default=False)] = None,
    distill: Annotated[bool, typer.Option(
        "--distill", help="Distil the adapted --base back into the small --student: half of "
                          "--minutes each (with --iterations, N each); model.safetensors is "
                          "then the student, teacher.safetensors the adapted base.")] = False,
    student: Annotated[str, typer.Option(
        help="The small model --distill trains (a zoo name or a weights file).")
    ] = "facesr-default",
    lr: Annotated[float | None, typer.Option(
        "--lr", min=1e-7, max=1e-2,
        help="Adam's learning rate of the fine-tune (and of --distill's run), constant "
             "(default: 5e-5). 2e-4 gained more than the default in 20-minute runs from "
             "facesr-rrdb23 (README).", show_default=False)] = None,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for training.")] = 1,
    precision: Annotated[Precision, typer.Option(
        help="Training arithmetic: auto (bf16 autocast where the CPU computes bf16, AMX-BF16 "
             "or AVX512-BF16: about 2x the iterations in --minutes; else fp32), fp32 or "
             "bf16.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    weights: Annotated[Path | None, typer.Option(
        help="Metric weights folder laid out like shared/weights (LPIPS, NIQE for the "
             "report; default: $FACESR_WEIGHTS, then ~/.local/share/facesr/weights).",
        show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Estimate this camera's blur kernels and noise from its footage, fine-tune a model on
    clean faces degraded that way, and write a report comparing it with the base model.

    Writes into --out: camera.json (inputs, settings, versions, seeds), kernels.safetensors,
    noise.safetensors, model.safetensors, report.html and report.json. Use the result with
    facesr upscale --model CAMERA_DIR. Interrupt it at any time and run the same command
    again: it continues where it stopped.
    """
    import torch

    from facesr.adapt import finetune
    from facesr.adapt.camera import AdaptError, Camera, Settings
    from facesr.degrade import kernelgan
    from facesr.degrade.pools import PoolError
    from facesr.io import InputError
    from facesr.train.config import ConfigError
    from facesr.train.loop import Interrupted

    setup_logging(verbose)
    torch.set_num_threads(threads)
    s = Settings(footage=list(footage), out=out_dir, hq=list(hq or []), base=base,
                 minutes=None if iterations is not None else minutes, iterations=iterations,
                 kernel_stills=kernel_stills,
                 iters=iters or kernelgan.preset(kernel_prior)[0],
                 kernel_prior=kernel_prior, kernel_angle=kernel_angle,
                 lr=finetune.LR if lr is None else lr, jobs=jobs,
                 threads=threads, precision=precision, seed=seed, weights=weights,
                 distill=distill,
                 student=student)
    again = f"run the same command again to continue {out_dir}"
    bar = progress()
    tasks: dict[str, int] = {}

    def on_progress(step: str, done: int, total: int) -> None:
        if step not in tasks:
            secs = " (s)" if iterations is None else ""
            label = {"kernels": "kernels", "train": f"training{secs}",
                     "distill": f"distilling{secs}", "check": "check"}.get(step, step)
            tasks[step] = bar.add_task(label, total=max(total, 1), note="")
        bar.update(tasks[step], completed=done, total=max(total, 1))

    def say(line: str) -> None:
        bar.console.print(escape(line), soft_wrap=True)

    try:
        with bar:
            rep = Camera(s, say).run(on_progress)
    except Interrupted as e:
        err.print(f"{escape(str(e))}; {again}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        err.print(f"interrupted; {again}", soft_wrap=True)
        raise typer.Exit(130) from None
    except (AdaptError, InputError, PoolError, ConfigError, FileNotFoundError,
            FileExistsError, ValueError, OSError) as e:
        err.print(f"[red]error[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    syn = rep["synthetic"]
    lines = [f"{out_dir}: camera profile and model written; report: "
             f"{out_dir / 'report.html'}"]
    for name, scores in syn["methods"].items():
        lines.append(f"  {name}: PSNR-Y {scores['psnr']['mean']:.2f} dB, SSIM "
                     f"{scores['ssim']['mean']:.4f}"
                     + (f", LPIPS {scores['lpips']['mean']:.3f}" if "lpips" in scores else ""))
    paired = syn.get("paired", {})
    if "psnr" in paired:
        p = paired["psnr"]
        lines.append(f"  {paired['of']}: {p['mean']:+.2f} dB [{p['low']:+.2f}, "
                     f"{p['high']:+.2f}] on {syn['faces']} held-out faces")
    lines.append(f"use it: facesr upscale --model {out_dir} INPUT... --out DIR")
    out.print(escape("\n".join(lines)), soft_wrap=True)
