"""Run ``facesr adapt`` step by step, resumable, and keep ``camera.json``.

Steps, in order; each one's result is a file in the camera folder and an entry in
``camera.json``'s ``steps``, written as soon as it is done, so a re-run (after Ctrl-C, a crash
or a power cut) skips what is done and continues the rest:

1. ``sample``: the stills (``footage.sample``);
2. ``kernels``: the kernel pool (itself resumable kernel by kernel);
3. ``noise``: the noise pool, thresholds relaxed as needed;
3b. ``compression``: the footage's JPEG quality, when it shows one (``profile.compression``;
   training compresses at it); a folder whose training began before this step existed records
   it as not read, and its run goes on unchanged;
3c. ``edges``: the blur direction read from every still's step edges beside each kernel's
   (``profile.edge_check``); with ``--kernel-angle edges`` elongated kernels are turned to a
   firm reading (``kernels-turned.safetensors``; training and the check then use it);
4. ``train``: the fine-tuning run, resumed from its last checkpoint for what is left of the
   budget; ``model.safetensors`` is copied out when the budget is spent (with ``--distill``:
   ``teacher.safetensors``, after ``DISTILL_SHARE`` of the minutes). While it runs, its
   minutes spent are kept in ``camera.json``'s ``progress`` (every ``PROGRESS_EVERY`` s and
   on an interrupt), so an interrupted run's minutes count toward ``--minutes``: a resumed
   run trains for what is left, not for the whole budget again;
4b. ``distill`` (``--distill`` only): the student (facesr-default) fine-tuned towards the
   teacher and the clean faces for the rest of the minutes (``--iterations``: as many
   iterations as the teacher's); it is ``model.safetensors``;
5. ``report``: the synthetic check, the real faces, ``report.json`` and ``report.html``
   (remade on every run that trained further).

A re-run must describe the same camera: the same footage (paths and SHA-256), target faces,
base model, seed and kernel settings; a difference is refused, naming it (choose another
``--out``). The budget (``--minutes``, ``--iterations``) may change: a larger one continues the
training.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facesr.adapt import CAMERA_FORMAT, CAMERA_VERSION, check, finetune, footage, profile
from facesr.adapt import report as report_mod
from facesr.data.inputs import hq_files
from facesr.degrade.degradation import Pools
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.io import atomic_write_bytes, atomic_write_text, expand_inputs, sha256_file
from facesr.provenance import facesr_version, git_info, library_versions, utc_now

FACES_ENV = "FACESR_FACES"  # a folder or .txt list of clean faces: adapt's default --hq
DISTILL_SHARE = 0.5  # --distill: the base's fine-tuning gets this share of --minutes
PROGRESS_EVERY = 30.0  # seconds between records of a training run's minutes spent
# keys newer than some camera folders
PROFILE_DEFAULTS = {"distill": False, "student": None, "kernel_prior": "default",
                    "kernel_angle": "kernelgan", "lr": finetune.LR}


class AdaptError(ValueError):
    """A camera folder or input that cannot be used (the message says which and why)."""


@dataclass
class Settings:
    """What makes a camera profile what it is (compared on resume) and the budget (not)."""

    footage: list[Path]
    out: Path
    hq: list[Path] = field(default_factory=list)  # empty: default_faces()
    base: str = "facesr-default"
    minutes: float | None = 30.0
    iterations: int | None = None
    kernel_stills: int = 6
    candidates: int = 48
    iters: int = 3000  # KernelGAN iterations per still
    kernel_prior: str = "default"  # kernelgan.PRESETS: "default" or "thin"
    kernel_angle: str = "kernelgan"  # profile.KERNEL_ANGLES: "kernelgan" or "edges"
    lr: float = finetune.LR  # Adam's learning rate for the fine-tune (and the distillation)
    jobs: int | None = None  # parallel KernelGAN runs (None: one per free core)
    threads: int = 1  # training threads
    precision: str = "auto"  # training arithmetic: auto, fp32, bf16 (finetune.training_precision)
    seed: int = 0
    detector: str | None = None
    weights: Path | None = None  # metric weights (LPIPS, NIQE) for the report
    distill: bool = False  # distil the adapted base into ``student`` (model.safetensors)
    student: str = "facesr-default"

    def profile_keys(self) -> dict:
        return {"base": self.base, "kernel_stills": self.kernel_stills,
                "candidates": self.candidates, "iters": self.iters,
                "kernel_prior": self.kernel_prior, "kernel_angle": self.kernel_angle,
                "lr": self.lr, "seed": self.seed,
                "distill": self.distill, "student": self.student if self.distill else None}


def default_faces() -> list[Path]:
    """Clean target faces when ``--hq`` is not given: ``$FACESR_FACES``, else (in a checkout
    with ``../shared`` beside it) the neutral London set and the Canada set of
    ``../shared/data/faces_hq`` (one photo per person: 142 sharp faces).

    Raises:
        AdaptError: none found.
    """
    env = os.environ.get(FACES_ENV)
    if env:
        files = hq_files([env])
        if not files:
            raise AdaptError(f"${FACES_ENV}={env}: no face images there")
        return files
    from facesr.provenance import checkout_root

    root = checkout_root()
    shared = root.parent / "shared" / "data" / "faces_hq" if root else None
    if shared is not None and shared.is_dir():
        files = sorted((shared / "london512").glob("n_*.jpg")) + \
            sorted((shared / "canada512").glob("*.jpg"))
        if files:
            return files
    raise AdaptError(f"no clean target faces: give --hq (face images, folders or .txt lists; "
                     f"sharp, at least 128 px) or set ${FACES_ENV}")


def _inputs(files: Sequence[Path]) -> list[dict]:
    return [{"path": str(f), "bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for f in files]


def _list_digest(files: Sequence[Path]) -> str:
    return hashlib.sha256("".join(f"{f}\n" for f in files).encode()).hexdigest()


class Camera:
    """One camera folder and its ``camera.json``."""

    def __init__(self, s: Settings, say: Callable[[str], None]) -> None:
        self.s, self.say = s, say
        self.dir = s.out
        self.path = s.out / "camera.json"
        self.state: dict = {}

    # ----------------------------------------------------------------- camera.json
    def open(self) -> None:
        s = self.s
        if s.kernel_angle not in profile.KERNEL_ANGLES:
            raise AdaptError(f"kernel angle must be one of {', '.join(profile.KERNEL_ANGLES)}, "
                             f"got {s.kernel_angle!r}")
        if s.distill and s.student == s.base:
            raise AdaptError(f"--distill: the base ({s.base}) is the student itself; give a "
                             "larger --base (e.g. facesr-rrdb23) or leave --distill out")
        files = expand_inputs(s.footage)
        if not files:
            raise AdaptError("no footage: the sources hold no image or video file")
        faces = hq_files(s.hq) if s.hq else default_faces()
        if len(faces) < finetune.HELD_OUT + 8:
            raise AdaptError(f"only {len(faces)} clean faces: give at least "
                             f"{finetune.HELD_OUT + 8} (--hq); {finetune.HELD_OUT} are held "
                             "out for the check")
        self.faces = faces
        inputs = _inputs(files)
        want = {"footage": inputs, "faces": {"count": len(faces),
                                             "list_sha256": _list_digest(faces)},
                "profile": s.profile_keys()}
        if self.path.is_file():
            try:
                self.state = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise AdaptError(f"{self.path}: unreadable ({e}); choose another --out") from e
            if self.state.get("format") != CAMERA_FORMAT:
                raise AdaptError(f"{self.path}: not a facesr camera file")
            diffs = []
            old_in = {(i["path"], i["sha256"]) for i in self.state.get("footage", [])}
            new_in = {(i["path"], i["sha256"]) for i in inputs}
            if old_in != new_in:
                diffs.append("the footage (paths or contents) differs")
            if self.state.get("faces") != want["faces"]:
                diffs.append("the target faces (--hq) differ")
            for k, v in want["profile"].items():
                was = self.state.get("profile", {}).get(k, PROFILE_DEFAULTS.get(k))
                if was != v:
                    diffs.append(f"{k}: {was} -> {v}")
            if diffs:
                raise AdaptError(f"{self.dir} holds another camera profile ("
                                 + "; ".join(diffs) + "): choose another --out")
            self.say(f"resuming {self.dir}: done so far: "
                     + (", ".join(self.state.get("steps", {})) or "nothing"))
        else:
            if self.dir.exists() and any(self.dir.iterdir()):
                raise AdaptError(f"{self.dir} exists and is not a camera folder (no "
                                 "camera.json): choose an empty or new --out")
            self.dir.mkdir(parents=True, exist_ok=True)
            self.state = {"format": CAMERA_FORMAT, "version": CAMERA_VERSION,
                          "created_utc": utc_now(), **want, "steps": {}}
        atomic_write_text(self.dir / "faces.txt", "".join(f"{f.resolve()}\n" for f in faces))
        self.save()

    def save(self) -> None:
        self.state["updated_utc"] = utc_now()
        self.state["software"] = {"facesr": facesr_version(), "git": git_info(),
                                  "libraries": library_versions()}
        self.state["budget"] = {"minutes": self.s.minutes, "iterations": self.s.iterations,
                                "threads": self.s.threads, "precision": self.s.precision}
        atomic_write_text(self.path, json.dumps(self.state, indent=2) + "\n")

    def done(self, step: str) -> dict | None:
        return self.state.get("steps", {}).get(step)

    def mark(self, step: str, info: dict) -> None:
        self.state.setdefault("steps", {})[step] = info
        self.save()

    # ----------------------------------------------------------------- the steps
    def run(self, progress: Callable[[str, int, int], None] | None = None) -> dict:
        """All steps; returns the report (``report.json``'s content)."""
        s, prog = self.s, progress or (lambda *a: None)
        self.open()
        t0 = time.perf_counter()
        sampled = footage.sample(s.footage, kernel_stills=s.kernel_stills,
                                 candidates=s.candidates)
        for line in sampled.errors:
            self.say(f"skipped: {line}")
        if not sampled.noise_stills:
            raise AdaptError("no readable still in the footage: " + "; ".join(sampled.errors))
        if not sampled.kernel_stills:
            raise AdaptError("no still of the footage has enough detail to estimate a blur "
                             f"kernel from (all under {footage.FLAT_GRADIENT} levels/px, or "
                             "near-duplicates): give footage with texture (a lit scene)")
        self.mark("sample", {"kernel_stills": [x.key for x in sampled.kernel_stills],
                             "noise_stills": len(sampled.noise_stills), "log": sampled.log,
                             "errors": sampled.errors,
                             "seconds": round(time.perf_counter() - t0, 1)})
        self.say(f"{len(sampled.noise_stills)} stills sampled; {len(sampled.kernel_stills)} "
                 "for kernels")

        kpath = self.dir / "kernels.safetensors"
        if not (self.done("kernels") and kpath.is_file()):
            t0 = time.perf_counter()
            jobs = s.jobs or max(1, min(len(sampled.kernel_stills), os.cpu_count() or 1))
            pool = profile.estimate_kernels(
                sampled.kernel_stills, kpath, iters=s.iters, seed=s.seed, jobs=jobs,
                prior=s.kernel_prior,
                progress=lambda d, n: prog("kernels", d, n))
            self.mark("kernels", {"file": kpath.name, "count": len(pool),
                                  "sha256": sha256_file(kpath), "jobs": jobs,
                                  "seconds": round(time.perf_counter() - t0, 1)})
            self.say(f"{kpath}: {len(pool)} kernels")
        npath = self.dir / "noise.safetensors"
        if not self.done("noise"):
            t0 = time.perf_counter()
            pool, steps = profile.noise_pool(sampled.noise_stills, seed=s.seed)
            if pool is not None:
                pool.save(npath)
            self.mark("noise", {"file": npath.name if pool is not None else None,
                                "count": len(pool) if pool is not None else 0,
                                "sha256": sha256_file(npath) if pool is not None else None,
                                "relaxation": steps,
                                "seconds": round(time.perf_counter() - t0, 1)})
            used = next((x for x in steps if x["used"]), None)
            self.say(f"{npath}: {len(pool)} noise patches (mu {used['mu']}, gamma "
                     f"{used['gamma']}: {used['why']})" if pool is not None else
                     "no smooth patch at any threshold: training uses Gaussian noise "
                     "(sigma 8) instead of the camera's")
        noise = npath if self.done("noise")["file"] else None
        if not self.done("compression"):
            if (self.dir / "train").exists():  # a run begun before facesr read compression
                comp = {"quality": None, "prob": None, "stills": [],
                        "why": "not read (this camera folder's training began before facesr "
                               "read the footage's compression): training uses the method's "
                               "JPEG 30"}
            else:
                t0 = time.perf_counter()
                comp = profile.compression(sampled.noise_stills)
                comp["seconds"] = round(time.perf_counter() - t0, 1)
            self.mark("compression", comp)
            self.say(f"compression: {comp['why']}")

        if not self.done("edges"):
            t0 = time.perf_counter()
            turned, rec = profile.edge_check(sampled.noise_stills, KernelPool.load(kpath),
                                             turn=s.kernel_angle == "edges")
            if turned is not None:
                turned.save(self.dir / profile.TURNED_FILE)
                rec["sha256"] = sha256_file(self.dir / profile.TURNED_FILE)
            rec["seconds"] = round(time.perf_counter() - t0, 1)
            self.mark("edges", rec)
            self.say(self._edge_line(rec))
        if self.done("edges").get("file"):
            kpath = self.dir / self.done("edges")["file"]

        trained = self._train(kpath, noise, prog)
        rep_path = self.dir / "report.json"
        if trained or not rep_path.is_file() or not (self.dir / "report.html").is_file():
            report = self._report(sampled, kpath, noise, prog)
        else:
            report = json.loads(rep_path.read_text(encoding="utf-8"))
        return report

    @staticmethod
    def _edge_line(rec: dict) -> str:
        """One line on the edge check: the reading, and what was (or could be) done."""
        if not rec["firm"]:
            return f"edge check: no firm blur direction ({rec['why']})"
        angle = rec["reading"]["angle"]
        turned = [k for k in rec["kernels"] if k["turn"]]
        if turned:
            return (f"edge check: {rec['why']}; {len(turned)} kernel(s) turned to it (by "
                    + ", ".join(f"{k['turn']:+.0f}" for k in turned) + " degrees)")
        far = [k for k in rec["kernels"] if abs(k.get("difference", 0)) >= 10
               and k["elongation"] >= profile.KERNEL_MIN_ELONGATION]
        if far and not rec["turn"]:
            return (f"edge check: {rec['why']}; {len(far)} KernelGAN kernel(s) point "
                    f"elsewhere (" + ", ".join(f"{k['angle']:.0f}" for k in far)
                    + f" degrees): --kernel-angle edges would turn them to {angle:.0f}")
        return f"edge check: {rec['why']}; the kernels agree or are round"

    def _train(self, kpath: Path, noise: Path | None, prog) -> bool:
        """Fine-tune the base model within its budget (all of it, or ``DISTILL_SHARE`` of
        ``--minutes`` when distilling) and, with ``--distill``, distil it into the student.
        True when it trained now (the report must be remade)."""
        s = self.s
        data = {"faces_list": self.dir / "faces.txt", "faces": self.faces, "kernels": kpath,
                "noise": noise, "iterations": s.iterations, "threads": s.threads,
                "seed": s.seed, "jpeg": self.done("compression"),
                "precision": finetune.training_precision(s.precision), "lr": s.lr}
        init, base_rec = finetune.base_weights(s.base, self.dir)
        cfg = finetune.train_config(init=init, arch=base_rec["arch"], **data)
        share = DISTILL_SHARE if s.distill else 1.0
        out = "teacher.safetensors" if s.distill else "model.safetensors"
        trained = self._stage("train", cfg, base_rec, share, out, prog)
        if not s.distill:
            return trained
        init, student_rec = finetune.base_weights(s.student, self.dir, stem="student")
        cfg = finetune.train_config(init=init, arch=student_rec["arch"], teacher=self.dir / out,
                                    **data)
        return self._stage("distill", cfg, student_rec, 1.0 - share, "model.safetensors",
                           prog) or trained

    def _stage(self, step: str, cfg, base_rec: dict, share: float, out: str, prog) -> bool:
        """One training run (``CAMERA_DIR/STEP/``) for ``share`` of the budget in minutes (or
        to ``--iterations``), resumed from its last checkpoint; its model copied to ``out``.
        (The teacher trains further only when the budget grew, and then so does the
        student's share.)"""
        s = self.s
        run_dir = self.dir / step
        # a run interrupted part-way left its minutes in "progress" (newer than its step's)
        info = (self.state.get("progress", {}).get(step) or self.done(step)
                or {"seconds": 0.0, "iteration": 0})
        budget = 60.0 * (s.minutes or 0.0) * share
        if s.iterations is not None:
            left = None if info["iteration"] < s.iterations else 0.0
        else:
            left = budget - info["seconds"]
        model = self.dir / out
        if left is not None and left <= 0 and model.is_file():
            self.say(f"{'distillation' if step == 'distill' else 'training'} done earlier "
                     f"({info['iteration']} iterations, "
                     f"{info['seconds'] / 60:.1f} min): give a larger --minutes or "
                     "--iterations to continue it")
            return False
        prec = "bf16" if cfg.train.amp_cpu == "bf16" else "fp32"
        # every arithmetic this run has trained in (a resume may change --precision)
        precs = sorted({*info.get("precision", []), prec})
        t0 = time.perf_counter()
        total = s.iterations or 0
        last = {"saved": t0, "iteration": info["iteration"]}

        def keep_progress() -> None:
            last["saved"] = time.perf_counter()
            self.state.setdefault("progress", {})[step] = {
                "seconds": round(info["seconds"] + last["saved"] - t0, 1),
                "iteration": last["iteration"], "precision": precs}
            self.save()

        def on_step(done: int, n: int, logged: dict | None) -> None:
            last["iteration"] = done
            if time.perf_counter() - last["saved"] >= PROGRESS_EVERY:
                keep_progress()
            if s.iterations is not None:
                prog(step, done, total)
            else:
                spent = info["seconds"] + time.perf_counter() - t0
                prog(step, int(spent), int(budget))

        what = (f"distilling into {base_rec['name']} ({run_dir})" if step == "distill"
                else f"training {run_dir} from {base_rec['name']}")
        self.say(f"{what} " + (f"to iteration {s.iterations}" if s.iterations is not None
                               else f"for {max(left, 0) / 60:.1f} more minutes")
                 + f" ({s.threads} thread(s), {prec})")
        try:
            result = finetune.run(cfg, run_dir, seconds_left=None if s.iterations else left,
                                  on_step=on_step, on_start=self.say)
        except BaseException:  # Ctrl-C, a signal, an error: its minutes stay spent
            keep_progress()
            raise
        spent = info["seconds"] + time.perf_counter() - t0
        self.state.get("progress", {}).pop(step, None)
        atomic_write_bytes(model, (run_dir / "model.safetensors").read_bytes())
        self.mark(step, {"iteration": result["iteration"], "seconds": round(spent, 1),
                         "run": step, "base": base_rec, "file": out, "precision": precs,
                         "sha256": sha256_file(model), "val": result.get("val", {})})
        return True

    def _report(self, sampled: footage.Sampled, kpath: Path, noise: Path | None, prog) -> dict:
        from facesr.models.zoo import load as load_model
        from facesr.train.config import load_config

        heldout = [Path(x) for x in (self.dir / "train" / "heldout.txt").read_text(
            encoding="utf-8").split("\n") if x]
        pools = Pools(KernelPool.load(kpath), NoisePool.load(noise) if noise else None)
        base_net, _ = load_model(self.dir / "base.safetensors")
        adapted_net, _ = load_model(self.dir / "model.safetensors")
        base_name = self.done("train")["base"]["name"]
        models = {base_name: base_net, "adapted": adapted_net}
        pair = ("adapted", base_name)
        if self.s.distill:  # the small model first: what the distilled one replaces
            student_name = self.done("distill")["base"]["name"]
            models = {student_name: load_model(self.dir / "student.safetensors")[0],
                      base_name: base_net,
                      f"adapted {base_name} (teacher)":
                          load_model(self.dir / "teacher.safetensors")[0],
                      "adapted": adapted_net}
            pair = ("adapted", student_name)
        # the degradation the model was trained with, from the run's own config
        cfg = load_config(self.dir / "train" / "config.yaml").data.degradation()
        self.say(f"synthetic check on {len(heldout)} held-out faces")
        syn = check.synthetic_check(heldout, pools, models, pair=pair, cfg=cfg,
                                    weights=self.s.weights,
                                    progress=lambda d, n: prog("check", d, n))
        real = check.real_faces(sampled.kernel_stills or sampled.noise_stills, models,
                                self.dir / "report", detector=self.s.detector,
                                weights=self.s.weights)
        rep = report_mod.build(self, syn, real, pools)
        report_mod.write(self.dir, rep)
        self.mark("report", {"files": ["report.json", "report.html"]})
        return rep
