"""``facesr train``: PSNR pre-training or GAN fine-tuning of the RRDBNet generator."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.progress import ProgressColumn, Task
from rich.text import Text

from facesr.cli._common import err, out, progress, setup_logging
from facesr.io import InputError
from facesr.train.checkpoint import POINTER, CheckpointError
from facesr.train.config import ConfigError, TrainConfig, config_diff, load_config
from facesr.train.logbook import require_tensorboard
from facesr.train.loop import Collapsed, Interrupted, World, world_from_env
from facesr.train.loop import train as run_training

log = logging.getLogger(__name__)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-.-- it/s")


def _default_run_dir(config: Path, stage: str) -> Path:
    """``runs/<config>-<stage>``, or the first of ``-2``, ``-3``... that holds no run yet."""
    base = Path("runs") / f"{config.stem}-{stage}"
    run, n = base, 1
    while (run / POINTER).exists() or (run / "config.yaml").exists():
        n += 1
        run = base.with_name(f"{base.name}-{n}")
    return run


def _shortcuts(hq: list[Path] | None, kernels: Path | None, noise: Path | None,
               iterations: int | None, threads: int | None, limit: int | None,
               val: int | None) -> tuple[list[str], dict[str, str]]:
    """The options that set config keys, as overrides (paths made absolute against the current
    directory), and how each was given (for error messages)."""
    items: dict[str, tuple[str, object]] = {}
    if hq:
        items["data.hq"] = ("--hq", [str(p.absolute()) for p in hq])
    if kernels is not None:
        items["data.kernels"] = ("--kernels", str(kernels.absolute()))
    if noise is not None:
        items["data.noise"] = ("--noise", str(noise.absolute()))
    for key, opt, value in (("train.iterations", "--iterations", iterations),
                            ("train.threads", "--threads", threads),
                            ("data.limit", "--limit", limit), ("data.val_count", "--val", val)):
        if value is not None:
            items[key] = (opt, value)
    overrides = [f"{k}={json.dumps(v)}" for k, (_, v) in items.items()]  # JSON is YAML
    labels = {k: f"{opt} {v if not isinstance(v, list) else ' '.join(v)}"
              for k, (opt, v) in items.items()}
    return overrides, labels


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def train(
    config: Annotated[Path | None, typer.Argument(
        help="Experiment YAML (e.g. configs/cpu-small.yaml). With --resume it may be omitted: "
             "the run's own config.yaml is used.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, e.g. --set train.batch=8 (value read as YAML); "
                      "repeatable.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue this run folder from its latest complete checkpoint.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder of a new run (default: runs/<config>-<stage>, then -2, -3...: "
                      "printed at the start and the end).")] = None,
    hq: Annotated[list[Path] | None, typer.Option(
        "--hq", help="Clean target faces: images, folders or .txt lists (facesr data curate's "
                     "--out); repeatable. Sets data.hq.")] = None,
    kernels: Annotated[Path | None, typer.Option(
        help="Kernel pool (facesr pool kernels). Sets data.kernels.")] = None,
    noise: Annotated[Path | None, typer.Option(
        help="Noise pool (facesr pool noise). Sets data.noise.")] = None,
    iterations: Annotated[int | None, typer.Option(
        min=1, help="Iterations to train. Sets train.iterations.")] = None,
    threads: Annotated[int | None, typer.Option(
        min=0, help="CPU threads (0: one per core). Sets train.threads.")] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N HQ files (in listing order). Sets data.limit.")] = None,
    val: Annotated[int | None, typer.Option(
        "--val", min=0, help="Hold out N HQ files for validation (instead of "
                             "data.val_fraction's share). Sets data.val_count.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Train the generator: stage psnr (L1) or gan (L1 + RaGAN PatchGAN + LPIPS).

    Relative paths in CONFIG are resolved against CONFIG's folder; those of --hq, --kernels,
    --noise and --set against the current directory.

    The run folder gets config.yaml, metrics.jsonl, images/, tb/, ckpt/ and model.safetensors.

    Stop it at any moment (even kill -9), then continue it with --resume RUN_DIR. Ctrl-C
    or SIGTERM first finish the current iteration and checkpoint it (exit code 130 or 143).

    Multi-GPU (DDP): torchrun --nproc_per_node N --no-python facesr train CONFIG ...
    """
    setup_logging(verbose)
    world = world_from_env()
    shortcuts, labels = _shortcuts(hq, kernels, noise, iterations, threads, limit, val)
    overrides = [*(set_ or []), *shortcuts]
    try:
        if resume is not None:
            if out_dir is not None and out_dir.resolve() != resume.resolve():
                raise _fail("--out and --resume name different folders; give one of them")
            saved_path = resume / "config.yaml"
            if not saved_path.is_file():
                raise _fail(f"{resume}: no config.yaml, so not a facesr run folder")
            saved = load_config(saved_path)
            cfg = load_config(config if config is not None else saved_path, overrides,
                              labels=labels)
            changes = config_diff(saved, cfg)
            if changes and world.main:
                err.print("[yellow]warning[/yellow] resuming with changed settings (the run "
                          "is no longer one uninterrupted run):\n  "
                          + escape("\n  ".join(changes)), soft_wrap=True)
            run_dir = resume
        else:
            if config is None:
                raise _fail("give a CONFIG file (or --resume RUN_DIR)")
            cfg = load_config(config, overrides, labels=labels)
            run_dir = out_dir or _default_run_dir(config, cfg.train.stage)
            if (run_dir / POINTER).exists():
                raise _fail(f"{run_dir} already holds a run: continue it with --resume "
                            f"{run_dir}, or choose another --out")
        if cfg.train.tensorboard:
            require_tensorboard()
    except (ConfigError, ImportError) as e:
        raise _fail(str(e)) from None

    if world.world_size > 1:
        import torch.distributed as dist

        on_gpu = cfg.train.device != "cpu" and torch.cuda.is_available()
        if on_gpu:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if on_gpu else "gloo")
        names = [str(run_dir)]
        dist.broadcast_object_list(names, src=0)  # the default name has a time stamp
        run_dir = Path(names[0])
    # train() applies the run's torch settings (train.threads, TF32 on CUDA)

    if world.main:
        what = "resuming" if resume is not None else "new run"
        err.print(f"{what}: {escape(str(run_dir))}  stage {cfg.train.stage}, "
                  f"{cfg.train.iterations} iterations, batch {cfg.train.batch}, "
                  f"{world.world_size} process(es)", soft_wrap=True)
    try:
        result = _run(cfg, run_dir, resume is not None, world)
    except Collapsed as e:
        raise _fail(str(e), 1) from None
    except Interrupted as e:
        err.print(f"{escape(str(e))}; continue with: facesr train --resume "
                  f"{escape(str(run_dir))}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        if world.main:
            err.print(f"interrupted; continue with: facesr train --resume "
                      f"{escape(str(run_dir))}", soft_wrap=True)
        raise typer.Exit(130) from None
    except (ConfigError, CheckpointError, InputError, FileExistsError, FileNotFoundError,
            ValueError) as e:
        raise _fail(str(e)) from None
    finally:
        if world.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if world.main:
        val = result["val"]
        summary = f"{run_dir}: iteration {result['iteration']}"
        if val:
            summary += (f", val PSNR-Y {val['val/psnr_y']:.2f} dB (bicubic "
                        f"{val['val/psnr_y_bicubic']:.2f}), SSIM-Y {val['val/ssim_y']:.4f}")
        out.print(escape(summary), soft_wrap=True)
        model = run_dir / "model.safetensors"
        out.print(f"generator: {escape(str(model))}", soft_wrap=True)
        out.print(escape(f"evaluate it on the held-out faces: facesr evaluate synthetic --hq "
                         f"{run_dir / 'heldout.txt'} --kernels {cfg.data.kernels or 'POOL'} "
                         f"--methods bicubic,{run_dir.name}={model} --out eval/{run_dir.name}"),
                  soft_wrap=True)


def _run(cfg: TrainConfig, run_dir: Path, resume: bool, world: World) -> dict:
    if not world.main:
        return run_training(cfg, run_dir, resume=resume, world=world)
    bar = progress()
    bar.columns = (*bar.columns[:-1], _Rate(), bar.columns[-1])
    with bar:
        task = bar.add_task(cfg.train.stage, total=cfg.train.iterations, note="")
        first = [True]

        def on_step(done: int, total: int, logged: dict[str, float] | None) -> None:
            if first[0]:  # a resumed run starts part-way; keep the jump out of the it/s
                bar.reset(task, total=total, completed=done - 1)
                first[0] = False
            bar.update(task, completed=done, total=total)
            if logged:
                keys = ("train/l_g", "train/l_d", "val/psnr_y")
                note = "  ".join(f"{k.split('/')[1]} {logged[k]:.4g}" for k in keys
                                 if k in logged)
                bar.update(task, note=note)

        def on_start(note: str) -> None:
            bar.console.print(escape(note), soft_wrap=True)

        return run_training(cfg, run_dir, resume=resume, world=world, on_step=on_step,
                            on_start=on_start)


if __name__ == "__main__":  # python -m facesr.cli.train CONFIG ... (or: facesr train)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    app()
