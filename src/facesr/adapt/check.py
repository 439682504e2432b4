"""What the adapted model gains, measured two ways for the report.

Synthetic check (:func:`synthetic_check`): the faces held out of the fine-tuning
(``train/heldout.txt``), brought to ``CHECK_SIDE`` px, degraded with *this camera's* profile
(its kernel pool and noise pool, JPEG 30 with probability 0.9: the training preset; each face's
degradation seeded by its name, ``facesr.eval.inputs.synthetic_pair``), then enlarged by
bicubic, the base model and the adapted model through the same pipeline as ``facesr
upscale`` (``facesr.upscale_face``). PSNR-Y and SSIM-Y always, LPIPS where its weights are found
(``facesr.metrics.find_weights``); mean and 95% interval per method, and the paired difference
adapted - base per face (what matters: both models see the same faces).

Real faces (:func:`real_faces`): faces found by the face detector in the sampled stills of the
footage (the largest ones), enlarged by the base and the adapted model, saved side by side
(LR enlarged by nearest neighbour | base | adapted) as PNGs; NIQE where its parameters are
found. There is no reference here: look at the pictures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from facesr.adapt.footage import Still
from facesr.degrade.degradation import PRESETS, DegradeConfig, Pools
from facesr.eval.inputs import shrink, synthetic_pair
from facesr.eval.stats import mean_ci
from facesr.io import read_image, write_image

log = logging.getLogger(__name__)

CHECK_SIDE = 128  # px of the HR faces of the synthetic check (LR 32 px: surveillance-sized)
REAL_FACES = 6  # at most this many real faces in the report
MIN_REAL_SIDE = 12  # px; smaller detections are not shown
SEED = 0


def _ci(values: Sequence[float]) -> dict:
    r = mean_ci(values)
    return {"mean": r.mean, "low": r.low, "high": r.high, "n": len(values)}


def synthetic_check(heldout: Sequence[Path], pools: Pools, models: dict[str, object], *,
                    pair: tuple[str, str] | None = None, cfg: DegradeConfig | None = None,
                    weights: Path | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Scores of bicubic and each of ``models`` (name -> network) on the held-out faces, and
    the paired difference per face of ``pair`` (adapted, base) (default: the last model and
    the first when there are two).

    Returns ``{"faces", "side", "methods": {name: {metric: ci}}, "paired": {...},
    "per_face": [...], "notes": [...]}`` (JSON-able).
    """
    import facesr
    from facesr.eval.scoring import MetricLoadError, MetricSet

    cfg = cfg or PRESETS["paper"]
    names = ["psnr", "ssim"]
    notes: list[str] = []
    try:
        metrics = MetricSet.load(["psnr", "ssim", "lpips"], weights_dir=weights)
        names.append("lpips")
    except MetricLoadError as e:
        metrics = MetricSet.load(names)
        notes.append(f"LPIPS left out: {e}")
    per_face: list[dict] = []
    for i, path in enumerate(heldout):
        hq = shrink(read_image(path), CHECK_SIDE)
        hr, lr, params = synthetic_pair(hq, Path(path).name, seed=SEED, pools=pools, cfg=cfg)
        outs = {"bicubic": F.interpolate(lr[None], size=hr.shape[-2:], mode="bicubic",
                                         align_corners=False)[0].clamp(0, 1)}
        for name, net in models.items():
            outs[name] = facesr.upscale_face(lr, model=net).float()
        row = {"face": str(path), "degradation": params.record}
        for name, img in outs.items():
            scores, why = metrics.score(img, hr)
            row[name] = scores
            for m, note in why.items():
                notes.append(f"{Path(path).name} {name} {m}: {note}")
        per_face.append(row)
        if progress is not None:
            progress(i + 1, len(heldout))
    methods = ["bicubic", *models]
    table = {}
    for name in methods:
        table[name] = {m: _ci([r[name][m] for r in per_face if r[name].get(m) is not None])
                       for m in names}
    paired = {}
    if pair is None and len(models) == 2:
        pair = (list(models)[1], list(models)[0])
    if pair is not None:
        adapted, base = pair
        for m in names:
            d = [r[adapted][m] - r[base][m] for r in per_face
                 if r[adapted].get(m) is not None and r[base].get(m) is not None]
            paired[m] = _ci(d)
        paired["of"] = f"{adapted} - {base}"
        d = [r[adapted]["psnr"] - r["bicubic"]["psnr"] for r in per_face]
        paired["psnr_vs_bicubic"] = _ci(d)
    return {"faces": len(per_face), "side": CHECK_SIDE, "metrics": names, "methods": table,
            "paired": paired, "per_face": per_face, "notes": notes}


def real_faces(stills: Sequence[Still], models: dict[str, object], out_dir: Path, *,
               detector: str | None = None, limit: int = REAL_FACES,
               weights: Path | None = None) -> dict:
    """Side-by-side crops of the largest real faces of ``stills`` (see module docs)."""
    import facesr
    from facesr.infer.faces import DEFAULT_DETECTOR, crop, expand_box, make_detector

    notes: list[str] = []
    try:
        det = make_detector(detector or DEFAULT_DETECTOR)
    except Exception as e:  # noqa: BLE001 - a missing detector must not stop the report
        return {"faces": [], "notes": [f"no face detector: {e}"]}
    found = []
    for s in stills:
        for f in det.detect(s.image):
            if min(f.w, f.h) >= MIN_REAL_SIDE:
                found.append((min(f.w, f.h), s, f))
    found.sort(key=lambda t: -t[0])
    niqe = None
    try:
        from facesr.eval.scoring import MetricSet

        niqe = MetricSet.load(["niqe"], weights_dir=weights)
    except Exception as e:  # noqa: BLE001
        notes.append(f"NIQE left out: {e}")
    out_dir.mkdir(parents=True, exist_ok=True)
    faces = []
    for k, (_, s, f) in enumerate(found[:limit]):
        box = expand_box(f, 0.25, (s.image.shape[1], s.image.shape[0]))
        lr = torch.from_numpy(crop(s.image, box)).permute(2, 0, 1).float().contiguous()
        panels = [F.interpolate(lr[None], scale_factor=4, mode="nearest")[0]]
        entry = {"still": s.key, "box": list(box), "score": round(float(f.score), 3)}
        for name, net in models.items():
            sr = facesr.upscale_face(lr, model=net).float().clamp(0, 1)
            panels.append(sr)
            if niqe is not None:
                scores, _ = niqe.score(sr)
                entry[f"niqe_{name}"] = scores.get("niqe")
        gap = torch.ones(3, panels[0].shape[1], 4)
        row = torch.cat([p for q in panels for p in (q, gap)][:-1], dim=2)
        name = f"face{k:02d}.png"
        write_image(out_dir / name, row.permute(1, 2, 0).numpy())
        entry["file"] = name
        faces.append(entry)
    if not found:
        notes.append(f"no face of at least {MIN_REAL_SIDE} px found in the sampled stills")
    return {"faces": faces, "panels": ["LR (nearest x4)", *models], "notes": notes}

