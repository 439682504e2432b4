"""``facesr adapt``: sampling, relaxed noise thresholds, resume, the report's numbers coming
from the files it names, bad footage, and the camera folder as a model.

A tiny base model (the ``nearest`` fixture) and synthetic footage and faces keep it fast; the
full-size run is ``benchmarks/adapt.py``.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from facesr.adapt import footage, profile
from facesr.cli import app
from facesr.degrade.kernels import principal_widths
from facesr.degrade.pools import KernelPool, NoisePool
from facesr.io import sha256_file

runner = CliRunner()




# ------------------------------------------------------------------ sampling


def test_plan_spreads_video_frames_over_the_footage(tmp_path, tiny_video, texture):
    v = tiny_video(tmp_path / "v.mp4", frames=12, audio=None)
    cv2.imwrite(str(tmp_path / "a.png"), texture(0, 40, 40))
    chosen, errors = footage.plan([v, tmp_path / "a.png"], candidates=10)
    assert errors == []
    frames = chosen[v]
    assert frames[0] == 0 and frames[-1] == 11 and len(frames) >= 8
    assert chosen[tmp_path / "a.png"] == [None]


def test_flat_and_duplicate_stills_serve_noise_only(inputs, tmp_path, texture):
    foot, _ = inputs
    import shutil

    shutil.copytree(foot, tmp_path / "f")
    cv2.imwrite(str(tmp_path / "f" / "still0_copy.png"), texture(0, 96, 128))  # a duplicate
    s = footage.sample([tmp_path / "f"], kernel_stills=10, candidates=20)
    kernel_keys = {st.path.name for st in s.kernel_stills}
    assert "flat.png" not in kernel_keys
    assert len(kernel_keys & {"still0.png", "still0_copy.png"}) == 1
    fates = {m["still"].rsplit("/", 1)[-1]: m for m in s.log}
    assert "too flat" in fates["flat.png"]["reason"]
    assert any("near-duplicate" in m["reason"] for m in s.log)
    assert "wall.png" not in kernel_keys  # noise is not detail
    assert len(s.noise_stills) == 6  # every readable still serves the noise pool


def test_bad_file_is_reported_and_the_rest_goes_on(inputs, tmp_path):
    foot, _ = inputs
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    s = footage.sample([foot, tmp_path / "broken.png"], kernel_stills=2)
    assert len(s.errors) == 1 and "broken.png" in s.errors[0]
    assert len(s.kernel_stills) == 2


# ------------------------------------------------------------------ noise


def test_noise_uses_the_method_thresholds_when_they_suffice():
    rng = np.random.default_rng(0)
    img = np.clip(0.5 + rng.normal(0, 4 / 255, (320, 320, 3)), 0, 1)  # flat + white noise
    st = footage.Still(footage.Path("x.png"), None, img, 0.0)
    pool, steps = profile.noise_pool([st])
    assert pool is not None and steps[0]["used"] and len(steps) == 1
    assert pool.settings["mu"] == 0.1 and pool.settings["gamma"] == 0.25


def test_noise_thresholds_are_relaxed_and_recorded_when_too_few_pass():
    rng = np.random.default_rng(1)
    # 8x8 blocks of different flat levels plus weak noise: like codec-flattened footage,
    # sub-window variances differ from the patch's far more than gamma = 0.25 allows
    blocks = rng.normal(0.5, 3 / 255, (16, 16, 1)).repeat(8, 0).repeat(8, 1)
    img = np.clip(blocks + rng.normal(0, 1.5 / 255, (128, 128, 3)), 0, 1)
    st = footage.Still(footage.Path("x.png"), None, img, 0.0)
    pool, steps = profile.noise_pool([st], min_patches=20)
    assert steps[0]["patches"] < 20 and not steps[0]["used"]
    used = [s for s in steps if s["used"]]
    assert len(used) == 1 and used[0]["gamma"] > 0.25
    assert pool is not None and pool.settings["relaxation"] == steps
    assert pool.settings["gamma"] == used[0]["gamma"]


def test_no_noise_pool_when_nothing_passes_anywhere():
    img = np.full((64, 64, 3), 0.5)  # variance 0 < phi everywhere
    pool, steps = profile.noise_pool([footage.Still(footage.Path("x"), None, img, 0.0)])
    assert pool is None and len(steps) == len(profile.RELAX)
    assert not any(s["used"] for s in steps)


# ------------------------------------------------------------------ compression


def _jpeg_still(texture, tmp_path, i: int, quality: int, *, as_file: bool) -> footage.Still:
    """A still of a camera that saves JPEG at ``quality``: the .jpg file itself, or its
    decoded frame (a PNG export: no table to read)."""
    path = tmp_path / f"s{i}.jpg"
    cv2.imwrite(str(path), texture(i, 96, 128), [cv2.IMWRITE_JPEG_QUALITY, quality])
    img = cv2.imread(str(path))[..., ::-1].astype(np.float64) / 255.0
    return footage.Still(path if as_file else tmp_path / f"s{i}.png", None, img, 10.0)


def test_compression_reads_the_cameras_jpeg_quality(texture, tmp_path):
    files = [_jpeg_still(texture, tmp_path, i, 35, as_file=True) for i in range(3)]
    c = profile.compression(files)
    assert c["quality"] == [35, 35] and c["prob"] == 1.0
    assert {x["method"] for x in c["stills"]} == {"tables"}
    frames = [_jpeg_still(texture, tmp_path, i, 35, as_file=False) for i in range(3)]
    c = profile.compression(frames)
    assert {x["method"] for x in c["stills"]} == {"dct"}
    assert abs(c["quality"][0] - 35) <= 1 and c["quality"][0] == c["quality"][1]
    assert "35" in c["why"] or "34" in c["why"] or "36" in c["why"]
    # the training run compresses at it, with the share of stills as the probability
    cfg = _config(tmp_path, jpeg={"quality": [30, 45], "prob": 0.75})
    assert cfg.data.degrade["jpeg_quality"] == [30, 45] and cfg.data.degrade["jpeg_prob"] == 0.75
    d = cfg.data.degradation()
    assert d.jpeg_quality == (30, 45) and d.jpeg_prob == 0.75


def test_no_compression_found_keeps_the_methods_jpeg(texture, tmp_path):
    plain = [footage.Still(tmp_path / f"p{i}.png", None, texture(i, 96, 128) / 255.0, 10.0)
             for i in range(3)]
    c = profile.compression(plain)
    assert c["quality"] is None and c["prob"] is None and "0 of 3" in c["why"]
    # one JPEG still among three uncompressed ones is not the camera's
    c = profile.compression(plain + [_jpeg_still(texture, tmp_path, 5, 40, as_file=True)])
    assert c["quality"] is None and "1 of 4" in c["why"]
    for jpeg in (None, c):
        d = _config(tmp_path, jpeg=jpeg).data.degradation()
        assert d.jpeg_quality == (30, 30) and d.jpeg_prob == 0.9  # the paper preset's


def _config(tmp_path, **kw):
    from facesr.adapt import finetune

    faces = tmp_path / "faces.txt"
    faces.write_text("")
    return finetune.train_config(faces_list=faces, faces=[], kernels=tmp_path / "k",
                                 noise=tmp_path / "n", init=tmp_path / "i",
                                 arch={"num_block": 1, "num_feat": 8, "num_grow_ch": 4},
                                 iterations=2, threads=1, seed=0, **kw)


# ------------------------------------------------------------------ the edge check


def _stills(images) -> list[footage.Still]:
    return [footage.Still(Path(f"s{i}.png"), None, img, 10.0) for i, img in enumerate(images)]


def _pool(*kernels) -> KernelPool:
    return KernelPool(torch.stack(kernels), [{"source": f"k{i}", "frame": None}
                                             for i in range(len(kernels))], 4, {"iters": 1})


def test_edge_check_turns_elongated_kernels_to_a_firm_reading(step_edges):
    import math

    from facesr.degrade.kernels import gaussian_kernel

    stills = _stills([step_edges(60.0, seed=i) for i in range(3)])
    turned_away = gaussian_kernel(25, 3.0, 1.3, math.radians(84))
    round_ = gaussian_kernel(25, 2.0, 1.9, math.radians(10))
    pool = _pool(turned_away, round_)
    new, rec = profile.edge_check(stills, pool, turn=True)
    assert rec["firm"] and abs(rec["reading"]["angle"] - 60) < 6
    assert new is not None and rec["file"] == profile.TURNED_FILE
    major, minor, angle = principal_widths(new.kernels[0])
    assert abs(angle - rec["reading"]["angle"]) < 1.5
    assert major == pytest.approx(3.0, abs=0.1) and minor == pytest.approx(1.3, abs=0.1)
    assert rec["kernels"][1]["turn"] == 0.0  # round: its direction means nothing
    assert torch.equal(new.kernels[1], round_)
    assert new.sources[0]["turned"] == rec["kernels"][0]["turn"] < -15
    # by default the reading is reported, nothing is turned
    new, rec = profile.edge_check(stills, pool, turn=False)
    assert new is None and rec["firm"] and rec["kernels"][0]["difference"] < -15
    assert rec["kernels"][0]["turn"] == 0.0 and rec["file"] is None


def test_edge_check_is_not_firm_on_round_blur_or_too_few_stills(step_edges):
    import math

    from facesr.degrade.kernels import gaussian_kernel

    pool = _pool(gaussian_kernel(25, 3.0, 1.0, math.radians(84)))
    new, rec = profile.edge_check(_stills([step_edges(0.0, 2.0, 2.0, seed=i)
                                           for i in range(3)]), pool, turn=True)
    assert new is None and not rec["firm"] and "round" in rec["why"]
    new, rec = profile.edge_check(_stills([step_edges(60.0)] * 2), pool, turn=True)
    assert new is None and not rec["firm"] and "fewer than 3" in rec["why"]
    flat = np.full((64, 64, 3), 0.5, np.float32)
    new, rec = profile.edge_check(_stills([flat] * 4), pool, turn=True)
    assert new is None and not rec["firm"] and rec["stills"][0]["angle"] is None
    crossed = _stills([step_edges(30.0, seed=0), step_edges(120.0, seed=1),
                       step_edges(75.0, seed=2)])
    new, rec = profile.edge_check(crossed, pool, turn=True)
    assert new is None and not rec["firm"] and "disagree" in rec["why"]


def test_an_unknown_kernel_angle_is_refused(inputs, tmp_path):
    from facesr.adapt.camera import AdaptError, Camera, Settings

    s = Settings(footage=[inputs[0]], out=tmp_path / "cam", hq=[inputs[1]], kernel_angle="x")
    with pytest.raises(AdaptError, match="kernel angle must be one of kernelgan, edges"):
        Camera(s, print).open()
    assert not (tmp_path / "cam").exists()


def test_kernel_angle_edges_trains_on_the_turned_pool(inputs, nearest, tmp_path, step_edges,
                                                      run_adapt, monkeypatch):
    import math

    from facesr.degrade.kernels import gaussian_kernel

    foot = tmp_path / "footage"
    foot.mkdir()
    for i in range(3):
        img = (step_edges(60.0, seed=i) * 255).round().astype(np.uint8)
        cv2.imwrite(str(foot / f"edge{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

    def kernelgan_turned_away(stills, pool_path, **kw):  # KernelGAN's seed-to-seed spread
        pool = KernelPool(torch.stack([gaussian_kernel(25, 3.0, 1.3, math.radians(84))
                                       for _ in stills]),
                          [{"source": str(s.path), "frame": s.frame} for s in stills], 4,
                          profile.kernel_settings(kw["iters"], kw["seed"]))
        pool.save(pool_path)
        return pool

    monkeypatch.setattr(profile, "estimate_kernels", kernelgan_turned_away)
    out = tmp_path / "cam"
    r = run_adapt(foot, inputs[1], out, "--iterations", "1", "--kernel-angle", "edges",
                  "--lr", "2e-4", base=nearest)
    assert r.exit_code == 0, r.output
    assert "kernel(s) turned" in r.output
    cam = json.loads((out / "camera.json").read_text())
    assert cam["profile"]["kernel_angle"] == "edges"
    turned = out / cam["steps"]["edges"]["file"]
    cfg = yaml.safe_load((out / "train" / "config.yaml").read_text())
    assert Path(cfg["data"]["kernels"]) == turned.resolve()
    assert cfg["optim"]["lr"] == 2e-4 and cam["profile"]["lr"] == 2e-4
    rep = json.loads((out / "report.json").read_text())
    assert rep["files"][turned.name] == sha256_file(turned)
    assert all(abs(k["angle"] - 60) < 6 for k in rep["kernels"])  # what training used
    assert "turned to" in (out / "report.html").read_text()
    assert all(abs(principal_widths(k)[2] - 84) < 1 for k in
               KernelPool.load(out / "kernels.safetensors").kernels)  # KernelGAN's, kept


# ------------------------------------------------------------------ the command


def test_camera_folder_holds_every_file(camera):
    out, output = camera
    for name in ("camera.json", "kernels.safetensors", "noise.safetensors",
                 "model.safetensors", "report.html", "report.json", "faces.txt"):
        assert (out / name).is_file(), name
    cam = json.loads((out / "camera.json").read_text())
    assert cam["format"] == "facesr.camera"
    assert all(len(i["sha256"]) == 64 for i in cam["footage"])
    assert cam["profile"]["seed"] == 0 and cam["software"]["facesr"]
    assert cam["steps"]["train"]["iteration"] == 2
    assert "adapted" in output and "facesr upscale --model" in output


def test_report_numbers_come_from_the_files_it_names(camera):
    out, _ = camera
    rep = json.loads((out / "report.json").read_text())
    for name, digest in rep["files"].items():
        assert sha256_file(out / name) == digest, name
    pool = KernelPool.load(out / "kernels.safetensors")
    assert len(rep["kernels"]) == len(pool)
    for k, r in zip(pool.kernels, rep["kernels"], strict=True):
        major, minor, _ = principal_widths(k)
        assert r["major"] == pytest.approx(major, abs=1e-3)
        assert r["minor"] == pytest.approx(minor, abs=1e-3)
    assert rep["kernel_settings"] == pool.settings
    noise = NoisePool.load(out / "noise.safetensors")
    assert rep["noise"]["patches"] == len(noise)
    metrics = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().split("\n")
               if x]
    assert [r["iter"] for r in rep["curve"]] == [r["iter"] for r in metrics]
    page = (out / "report.html").read_text()
    syn = rep["synthetic"]
    assert syn["faces"] == 20  # the held-out faces of the run
    for scores in syn["methods"].values():
        assert f"{scores['psnr']['mean']:.2f}" in page
    for fig in re.findall(r'src="(report/[^"]+)"', page):
        assert (out / fig).is_file()
    assert f"KernelGAN, default prior, {pool.settings['iters']} iterations per still" in page
    cam = json.loads((out / "camera.json").read_text())
    comp = cam["steps"]["compression"]
    assert rep["compression"] == comp and html.escape(comp["why"]) in page
    assert rep["edges"] == cam["steps"]["edges"] and html.escape(rep["edges"]["why"]) in page
    assert not rep["edges"]["turn"] and rep["edges"]["file"] is None  # the default: reported
    assert comp["quality"] is None  # the fixture's footage is lossless PNG


def test_rerun_resumes_without_redoing_and_continues_training(camera, inputs, nearest, run_adapt):
    out, _ = camera
    foot, faces = inputs
    kernels_before = (out / "kernels.safetensors").stat().st_mtime_ns
    r = run_adapt(foot, faces, out, "--iterations", "2", base=nearest)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "training done earlier" in r.output
    assert (out / "kernels.safetensors").stat().st_mtime_ns == kernels_before
    r = run_adapt(foot, faces, out, "--iterations", "4", base=nearest)
    assert r.exit_code == 0, r.output
    cam = json.loads((out / "camera.json").read_text())
    assert cam["steps"]["train"]["iteration"] == 4
    assert (out / "kernels.safetensors").stat().st_mtime_ns == kernels_before


def test_a_folder_trained_before_compression_was_read_goes_on_unchanged(
        camera, inputs, nearest, run_adapt, tmp_path):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(camera[0], out)
    cam = json.loads((out / "camera.json").read_text())
    del cam["steps"]["compression"]  # as an older facesr left it
    (out / "camera.json").write_text(json.dumps(cam))
    r = run_adapt(*inputs, out, "--iterations", "3", base=nearest)
    assert r.exit_code == 0, r.output
    comp = json.loads((out / "camera.json").read_text())["steps"]["compression"]
    assert comp["quality"] is None and "before facesr read" in comp["why"]
    cfg = yaml.safe_load((out / "train" / "config.yaml").read_text())
    assert "jpeg_quality" not in cfg["data"]["degrade"]


def test_precision_auto_follows_the_cpu_and_reaches_the_run(tmp_path, monkeypatch):
    from facesr.adapt import finetune
    from facesr.infer import pipeline

    for units, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(pipeline, "cpu_has_bf16_units", lambda u=units: u)
        assert finetune.training_precision("auto") == want
    assert finetune.training_precision("fp32") == "fp32"
    assert finetune.training_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        finetune.training_precision("fp16")
    assert _config(tmp_path).train.amp_cpu == "none"
    assert _config(tmp_path, precision="bf16").train.amp_cpu == "bf16"


def test_a_resume_may_change_precision_and_the_record_keeps_both(
        camera, inputs, nearest, run_adapt, tmp_path):
    import shutil

    out = tmp_path / "prec"
    shutil.copytree(camera[0], out)
    cam = json.loads((out / "camera.json").read_text())
    del cam["steps"]["train"]["precision"]  # as a facesr without --precision left it
    (out / "camera.json").write_text(json.dumps(cam))
    n = cam["steps"]["train"]["iteration"]  # other tests may have trained the fixture on
    r = run_adapt(*inputs, out, "--iterations", str(n + 1), "--precision", "fp32",
                  base=nearest)
    assert r.exit_code == 0, r.output
    assert "fp32)" in r.output
    assert json.loads((out / "camera.json").read_text())["steps"]["train"]["precision"] \
        == ["fp32"]
    r = run_adapt(*inputs, out, "--iterations", str(n + 2), "--precision", "bf16",
                  base=nearest)
    assert r.exit_code == 0, r.output
    cam = json.loads((out / "camera.json").read_text())
    assert cam["steps"]["train"]["iteration"] == n + 2
    assert cam["steps"]["train"]["precision"] == ["bf16", "fp32"]
    assert cam["budget"]["precision"] == "bf16"
    assert yaml.safe_load((out / "train" / "config.yaml").read_text())["train"]["amp_cpu"] \
        == "bf16"
    assert "bf16 and fp32" in (out / "report.html").read_text()


def test_an_interrupted_run_s_minutes_count_toward_the_budget(
        camera, inputs, nearest, run_adapt, tmp_path, monkeypatch):
    """Ctrl-C part-way through training: the minutes it spent stay spent, so the re-run
    trains for what is left of --minutes, not for the whole budget again."""
    import shutil
    import time

    from facesr.adapt import finetune

    out = tmp_path / "budget"
    shutil.copytree(camera[0], out)
    before = json.loads((out / "camera.json").read_text())["steps"]["train"]["seconds"]
    asked = []

    def run(cfg, run_dir, *, seconds_left, on_step, on_start):
        asked.append(seconds_left)
        if len(asked) == 1:
            on_step(3, 0, None)
            time.sleep(0.6)
            raise KeyboardInterrupt
        return {"iteration": 4}

    monkeypatch.setattr(finetune, "run", run)
    r = run_adapt(*inputs, out, "--minutes", "0.5", base=nearest)
    assert r.exit_code == 130 and "run the same command again" in r.output
    cam = json.loads((out / "camera.json").read_text())
    assert cam["progress"]["train"]["iteration"] == 3
    assert cam["progress"]["train"]["precision"] == [finetune.training_precision("auto")]
    assert cam["progress"]["train"]["seconds"] >= before + 0.55
    r = run_adapt(*inputs, out, "--minutes", "0.5", base=nearest)
    assert r.exit_code == 0, r.output
    assert asked[0] == pytest.approx(30 - before, abs=0.1)
    assert asked[1] <= asked[0] - 0.55  # seconds are kept to 0.1
    cam = json.loads((out / "camera.json").read_text())
    assert "train" not in cam.get("progress", {})
    assert cam["steps"]["train"]["iteration"] == 4
    assert cam["steps"]["train"]["seconds"] >= before + 0.55


def test_other_footage_in_the_same_folder_is_refused(camera, inputs, nearest, tmp_path, texture,
                                                     run_adapt):
    out, _ = camera
    _, faces = inputs
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "x.png"), texture(7, 96, 128))
    r = run_adapt(other, faces, out, "--iterations", "2", base=nearest)
    assert r.exit_code == 2
    assert "footage" in r.output and "another --out" in r.output
    assert "Traceback" not in r.output


def test_kernel_prior_is_recorded_and_a_change_is_refused(camera, inputs, nearest,
                                                           run_adapt):
    out, _ = camera
    foot, faces = inputs
    pool = KernelPool.load(out / "kernels.safetensors")
    assert pool.settings == profile.kernel_settings(20, 0)  # "default": settings as before
    assert "prior" not in pool.settings
    thin = profile.kernel_settings(20, 0, "thin")
    assert thin["prior"] == "thin" and thin["out_crop"] == 64
    r = run_adapt(foot, faces, out, "--iterations", "2", "--kernel-prior", "thin",
                  base=nearest)
    assert r.exit_code == 2
    assert "kernel_prior: default -> thin" in r.output and "Traceback" not in r.output
    for option, change, said in (("--kernel-angle", "edges", "kernel_angle: kernelgan -> edges"),
                                 ("--lr", "2e-4", "lr: 5e-05 -> 0.0002")):
        r = run_adapt(foot, faces, out, "--iterations", "2", option, change, base=nearest)
        assert r.exit_code == 2 and "choose another --out" in r.output, option
        assert said in r.output, r.output


def test_footage_with_nothing_readable_fails_in_one_line(inputs, nearest, tmp_path, run_adapt):
    _, faces = inputs
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"garbage")
    r = run_adapt(bad, faces, tmp_path / "cam", "--iterations", "1", base=nearest)
    assert r.exit_code == 2 and "a.png" in r.output and "Traceback" not in r.output


def test_upscale_with_the_camera_folder_names_the_profile(camera, tmp_path, texture):
    out, _ = camera
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), texture(3, 24, 24))
    r = runner.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "o"), "--model",
                            str(out), "--mode", "face"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "o" / "face.json").read_text())
    assert rec["model"]["name"] == f"camera:{out.name}"
    assert str(out.resolve()) in rec["model"]["source"]
    assert sha256_file(out / "camera.json") in rec["model"]["source"]
    assert rec["model"]["sha256"] == sha256_file(out / "model.safetensors")
    # its model.safetensors given directly names the profile too
    r = runner.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "o2"), "--model",
                            str(out / "model.safetensors"), "--mode", "face"])
    assert r.exit_code == 0, r.output
    rec2 = json.loads((tmp_path / "o2" / "face.json").read_text())
    assert rec2["model"]["name"] == rec["model"]["name"]
    assert rec2["model"]["source"] == rec["model"]["source"]


def test_training_stops_when_the_budget_says_so(tmp_path, inputs, nearest):
    """stop_when ends a run early with a model; resuming continues from there."""
    from facesr.adapt import finetune
    from facesr.data.inputs import hq_files
    from facesr.train.loop import train

    _, faces = inputs
    files = hq_files([faces])
    lst = tmp_path / "faces.txt"
    lst.write_text("".join(f"{f}\n" for f in files))
    k = tmp_path / "k.safetensors"
    KernelPool(torch.ones(1, 25, 25) / 625, [{"source": "x"}]).save(k)
    cfg = finetune.train_config(faces_list=lst, faces=files, kernels=k, noise=None, init=nearest,
                                arch={"num_block": 1, "num_feat": 8, "num_grow_ch": 4},
                                iterations=None, threads=1, seed=0)
    res = train(cfg, tmp_path / "run", stop_when=lambda done: done >= 3)
    assert res["iteration"] == 3 and (tmp_path / "run" / "model.safetensors").is_file()
    res = train(cfg, tmp_path / "run", resume=True, stop_when=lambda done: done >= 5)
    assert res["iteration"] == 5


def test_relaxed_steps_keep_noise_and_drop_structure():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4, 3, 32, 32, generator=g) * 0.02
    ramp = torch.linspace(-0.05, 0.05, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32).clone()
    assert (profile.lowfreq_share(noise) < 0.1).all()
    assert (profile.lowfreq_share(ramp) > 0.8).all()
    # a smooth gradient image: only relaxed steps find patches there, and they are structure
    y, x = np.mgrid[:128, :128] / 128.0
    img = np.repeat((0.3 + 0.3 * x + 0.1 * y)[..., None], 3, axis=2)
    _, steps = profile.noise_pool([footage.Still(footage.Path("g.png"), None, img, 0.0)])
    assert steps[0]["patches"] == 0
    assert sum(s["dropped_as_structure"] for s in steps) > 0


def test_distill_trains_the_student_towards_the_adapted_teacher(inputs, nearest, tmp_path,
                                                                run_adapt):
    import shutil

    foot, faces = inputs
    student = shutil.copyfile(nearest, tmp_path / "small.safetensors")
    out = tmp_path / "cam"
    r = run_adapt(foot, faces, out, "--iterations", "2", "--distill", "--student",
                  str(student), base=nearest)
    assert r.exit_code == 0, r.output
    cam = json.loads((out / "camera.json").read_text())
    train, dist = cam["steps"]["train"], cam["steps"]["distill"]
    assert train["iteration"] == 2 and dist["iteration"] == 2
    # the adapted base is the teacher; the distilled student is the camera's model
    assert sha256_file(out / "teacher.safetensors") == train["sha256"]
    assert sha256_file(out / "model.safetensors") == dist["sha256"]
    assert dist["base"]["sha256"] != train["base"]["sha256"] or \
        dist["base"]["name"] != train["base"]["name"]
    cfg = yaml.safe_load((out / "distill" / "config.yaml").read_text())
    assert cfg["loss"]["teacher"] == str((out / "teacher.safetensors").resolve())
    assert cfg["loss"]["l_teacher"] > 0
    assert cfg["train"]["init_g"] == str((out / "student.safetensors").resolve())
    logged = [json.loads(x) for x in (out / "distill" / "metrics.jsonl").read_text().split("\n")
              if x]
    assert any("train/l_teacher" in x for x in logged)
    rep = json.loads((out / "report.json").read_text())
    names = list(rep["synthetic"]["methods"])
    assert names[0] == "bicubic" and len(names) == 5 and names[-1] == "adapted"
    assert rep["synthetic"]["paired"]["of"] == f"adapted - {names[1]}"  # the student's base
    assert [r["iter"] for r in rep["curve_distill"]] == [x["iter"] for x in logged]
    for name in ("teacher.safetensors", "student.safetensors", "distill/metrics.jsonl"):
        assert rep["files"][name] == sha256_file(out / name)
    assert "distilled into" in (out / "report.html").read_text()
    # a re-run resumes both runs; leaving --distill out is another camera
    r = run_adapt(foot, faces, out, "--iterations", "2", "--distill", "--student", str(student),
                  base=nearest)
    assert r.exit_code == 0 and "distillation done earlier" in r.output, r.output
    r = run_adapt(foot, faces, out, "--iterations", "2", base=nearest)
    assert r.exit_code == 2 and "distill: True -> False" in r.output, r.output


def test_distill_into_the_base_itself_is_refused(inputs, nearest, tmp_path, run_adapt):
    foot, faces = inputs
    r = run_adapt(foot, faces, tmp_path / "cam", "--iterations", "1", "--distill", "--student",
                  str(nearest), base=nearest)
    assert r.exit_code == 2 and "is the student itself" in r.output, r.output
    assert "Traceback" not in r.output
