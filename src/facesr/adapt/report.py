"""``report.json`` and ``report.html`` of a camera folder.

``report.json`` holds every number the page shows and names the files they come from, with
their SHA-256 (``files``): the kernel widths are computed from the pool training used
(``kernels.safetensors``, or ``kernels-turned.safetensors`` after the edge check turned it), the
noise statistics from ``noise.safetensors``, the JPEG qualities are ``camera.json``'s
compression step, the curve is ``train/metrics.jsonl`` (and ``distill/metrics.jsonl``), the
check comes from ``model.safetensors`` and ``base.safetensors`` (and, with distillation,
``teacher.safetensors`` and ``student.safetensors``).
``report.html`` is drawn from ``report.json`` alone (:func:`render`), so the two cannot
disagree; it is one self-contained file plus its pictures in ``report/`` (no script, no
network).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from facesr.adapt.profile import TURNED_FILE
from facesr.degrade.degradation import Pools
from facesr.degrade.kernels import principal_widths
from facesr.degrade.pools import pool_picture
from facesr.infer.pipeline import NOTICE
from facesr.io import atomic_write_text, read_jsonl, sha256_file, write_image


def build(camera, syn: dict, real: dict, pools: Pools) -> dict:
    """The report of ``camera`` (a ``facesr.adapt.camera.Camera``) from its files."""
    d: Path = camera.dir
    st = camera.state
    pics = d / "report"
    pics.mkdir(exist_ok=True)
    kernels = []
    for k, src in zip(pools.kernels.kernels, pools.kernels.sources, strict=True):
        major, minor, angle = principal_widths(k)
        kernels.append({"source": src["source"], "frame": src.get("frame"),
                        "major": round(major, 3), "minor": round(minor, 3),
                        "angle": round(angle, 1)})
    write_image(pics / "kernels.png", pool_picture(pools.kernels))
    noise = None
    if pools.noise is not None:
        p = pools.noise.patches
        noise = {"patches": len(pools.noise), "patch": int(p.shape[-1]),
                 "std_rgb": [round(float(v) * 255, 3) for v in p.std(dim=(0, 2, 3))],
                 "std": round(float(p.std()) * 255, 3),
                 "stills_with_patches": sum(1 for r in pools.noise.sources if r["kept"])}
        write_image(pics / "noise.png", pool_picture(pools.noise, 32))
    def curve(run: str) -> list[dict]:
        keys = ("iter", "train/l_pix", "train/l_teacher", "val/psnr_y", "val/psnr_y_bicubic")
        path = d / run / "metrics.jsonl"
        return [{k: r[k] for k in keys if k in r} for r in read_jsonl(path)] \
            if path.is_file() else []

    names = ["kernels.safetensors", TURNED_FILE, "noise.safetensors",
             "model.safetensors", "base.safetensors", "teacher.safetensors", "student.safetensors",
             "train/metrics.jsonl", "distill/metrics.jsonl", "train/heldout.txt", "faces.txt"]
    files = {n: sha256_file(d / n) for n in names if (d / n).is_file()}
    return {"camera": str(d), "notice": NOTICE, "steps": st.get("steps", {}),
            "footage": st.get("footage", []), "budget": st.get("budget", {}),
            "software": st.get("software", {}), "kernels": kernels,
            "kernel_settings": dict(pools.kernels.settings),
            "noise": noise, "noise_relaxation": st["steps"]["noise"]["relaxation"],
            "compression": st["steps"].get("compression"), "edges": st["steps"].get("edges"),
            "sampled": st["steps"]["sample"]["log"], "curve": curve("train"),
            "curve_distill": curve("distill"),
            "synthetic": syn,
            "real": real, "files": files}


def _kernel_setting(ks: dict) -> str:
    """One line on how the kernels were estimated (the pool's settings)."""
    if not ks:
        return ""
    line = (f"KernelGAN, {ks.get('prior', 'default')} prior, {ks.get('iters')} iterations "
            f"per still, seed {ks.get('seed')}")
    extra = [f"{k} {ks[k]}" for k in ("out_crop", "w_bicubic", "w_sparse") if k in ks]
    line += (f" ({', '.join(extra)})" if extra else "") + "."
    if "turned_to_edges" in ks:
        line += (f" Elongated kernels turned to {ks['turned_to_edges']:.0f} degrees by the edge "
                 "check (below); the table shows them as trained on.")
    return line


def _edges_html(edges: dict | None) -> str:
    """The edge check (``camera.json``'s edges step): the reading and each kernel's turn."""
    if not edges:
        return ""
    stills = "".join(
        f"<tr><td>{_e(Path(r['still']).name)}</td><td>"
        + ("-" if r["angle"] is None else f"{r['angle']:.0f}") + "</td><td>"
        + ("-" if r["angle"] is None else f"{r['anisotropy']:.2f}") + "</td><td>"
        + str(r.get("edges", "-")) + "</td></tr>" for r in edges["stills"])
    kern = "".join(
        f"<tr><td>{_e(Path(str(k['source'])).name)}</td><td>{k['angle']:.0f}</td>"
        f"<td>{k['elongation']:.2f}</td><td>"
        + ("-" if "difference" not in k else f"{k['difference']:+.0f}")
        + f"</td><td>{k['turn']:+.0f}</td></tr>" for k in edges["kernels"])
    mode = ("--kernel-angle edges: elongated kernels are turned to a firm reading"
            if edges["turn"] else "--kernel-angle kernelgan: reported, not applied")
    return (f"<h2>Blur direction from the step edges</h2><p>{_e(edges['why'])}. "
            f"{_e(mode)}.</p><table id=\"edges\"><tr><th>still</th><th>angle (deg)</th>"
            f"<th>anisotropy</th><th>edges</th></tr>{stills}</table>"
            f"<table id=\"edge-kernels\"><tr><th>KernelGAN kernel</th><th>angle (deg)</th>"
            f"<th>major/minor</th><th>edges - kernel</th><th>turned by</th></tr>{kern}</table>")


def write(d: Path, rep: dict) -> None:
    atomic_write_text(d / "report.json", json.dumps(rep, indent=2) + "\n")
    atomic_write_text(d / "report.html", render(rep))


def _e(x: object) -> str:
    return html.escape(str(x))


def _svg_curve(curve: list[dict]) -> str:
    pts = [(r["iter"], r["val/psnr_y"], r.get("val/psnr_y_bicubic")) for r in curve
           if "val/psnr_y" in r]
    if len(pts) < 2:
        return "<p>Too few validations for a curve.</p>"
    w, h, m = 560, 200, 36
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + [p[2] for p in pts if p[2] is not None]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys) - 0.1, max(ys) + 0.1

    def xy(x: float, y: float) -> str:
        return (f"{m + (x - x0) / max(x1 - x0, 1e-9) * (w - 2 * m):.1f},"
                f"{h - m - (y - y0) / max(y1 - y0, 1e-9) * (h - 2 * m):.1f}")

    line = " ".join(xy(p[0], p[1]) for p in pts)
    bic = pts[0][2]
    parts = [f'<svg width="{w}" height="{h}" role="img" aria-label="validation PSNR-Y">',
             f'<rect x="0" y="0" width="{w}" height="{h}" fill="#fff" stroke="#ccc"/>',
             f'<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{line}"/>']
    if bic is not None:
        parts.append(f'<polyline fill="none" stroke="#999" stroke-dasharray="4 3" '
                     f'points="{xy(x0, bic)} {xy(x1, bic)}"/>')
    parts += [f'<text x="{m}" y="{h - 8}" font-size="11">iteration {x0}</text>',
              f'<text x="{w - m - 90}" y="{h - 8}" font-size="11">iteration {x1}</text>',
              f'<text x="4" y="14" font-size="11">{y1:.2f} dB</text>',
              f'<text x="4" y="{h - m}" font-size="11">{y0:.2f} dB</text>', "</svg>"]
    return "".join(parts)


def _ci(c: dict | None, digits: int = 2) -> str:
    if not c:
        return "-"
    return f"{c['mean']:.{digits}f} [{c['low']:.{digits}f}, {c['high']:.{digits}f}]"


def render(rep: dict) -> str:
    """The page, from the report alone."""
    syn, real = rep["synthetic"], rep["real"]
    digits = {"psnr": 2, "ssim": 4, "lpips": 3}
    label = {"psnr": "PSNR-Y (dB)", "ssim": "SSIM-Y", "lpips": "LPIPS (lower is better)"}
    heads = "".join(f"<th>{_e(label.get(m, m))}</th>" for m in syn["metrics"])
    rows = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(f"<td>{_ci(scores.get(m), digits[m])}</td>" for m in syn["metrics"])
        + "</tr>" for name, scores in syn["methods"].items())
    paired = syn.get("paired") or {}
    paired_rows = "".join(
        f"<tr><td>{_e(label.get(m, m))}</td><td>{_ci(paired.get(m), digits[m] + 1)}</td></tr>"
        for m in syn["metrics"] if m in paired)
    kern = "".join(f"<tr><td>{_e(Path(k['source']).name)}</td>"
                   f"<td>{'-' if k['frame'] is None else k['frame']}</td>"
                   f"<td>{k['major']:.2f}</td><td>{k['minor']:.2f}</td><td>{k['angle']:.0f}"
                   "</td></tr>" for k in rep["kernels"])
    relax = "".join(f"<tr><td>{s['mu']}</td><td>{s['gamma']}</td><td>{s['phi']}</td>"
                    f"<td>{s['patches']}</td><td>{'yes' if s['used'] else ''}</td>"
                    f"<td>{_e(s['why'])}</td></tr>" for s in rep["noise_relaxation"])
    noise = rep["noise"]
    noise_html = (f"<p>{noise['patches']} patches of {noise['patch']} px from "
                  f"{noise['stills_with_patches']} stills; noise std "
                  f"{noise['std']:.2f} levels (R/G/B " + "/".join(f"{v:.2f}" for v in
                                                                   noise["std_rgb"])
                  + ').</p><img class="noise" src="report/noise.png" alt="noise patches">'
                  if noise else "<p>No noise patch found: training used Gaussian noise.</p>")
    comp = rep.get("compression") or {}
    comp_rows = "".join(
        f"<tr><td>{_e(x['still'])}</td><td>{x['quality'] if x['quality'] else '-'}</td>"
        f"<td>{_e(x.get('method', ''))}</td><td>{x.get('fit', '')}</td></tr>"
        for x in comp.get("stills", []))
    comp_html = (f"<p>{_e(comp.get('why', 'not read (a camera folder from an older facesr)'))}"
                 "</p>" + (f'<table id="compression"><tr><th>still</th><th>JPEG quality</th>'
                           f"<th>read from</th><th>fit</th></tr>{comp_rows}</table>"
                           if comp_rows else ""))
    sampled = "".join(f"<tr><td>{_e(x['still'])}</td><td>{_e(x['use'])}</td>"
                      f"<td>{_e(x['reason'])}</td></tr>" for x in rep["sampled"])
    faces = "".join(
        f'<figure><img src="report/{_e(f["file"])}" alt="{_e(f["still"])}">'
        f"<figcaption>{_e(f['still'])} (detector score {f['score']}); panels: "
        f"{_e(' | '.join(real.get('panels', [])))}"
        + "".join(f"; {_e(k)} {v:.2f}" for k, v in f.items()
                  if k.startswith("niqe_") and v is not None)
        + "</figcaption></figure>" for f in real.get("faces", []))
    notes = "".join(f"<li>{_e(n)}</li>" for n in syn.get("notes", []) + real.get("notes", []))
    train = rep["steps"].get("train", {})
    dist = rep["steps"].get("distill")
    base = f"<b>{_e(train.get('base', {}).get('name', '?'))}</b>"
    its = (f"{train.get('iteration', 0)} iterations in "
           f"{train.get('seconds', 0) / 60:.1f} min"
           + (f" ({_e(' and '.join(train['precision']))})" if train.get("precision") else ""))
    if dist:
        made = (f"{base} fine-tuned {its} (the teacher, <code>teacher.safetensors</code>), then "
                f"distilled into <b>{_e(dist.get('base', {}).get('name', '?'))}</b> in "
                f"{dist.get('iteration', 0)} iterations, {dist.get('seconds', 0) / 60:.1f} min "
                "(<code>model.safetensors</code>, the adapted model below)")
    else:
        made = f"adapted model trained {its} from {base}"
    dist_curve = (f"<h3>Distillation</h3>{_svg_curve(rep['curve_distill'])}"
                  if rep.get("curve_distill") else "")
    files = "".join(f"<tr><td>{_e(n)}</td><td><code>{_e(h)}</code></td></tr>"
                    for n, h in rep["files"].items())
    footage = "".join(f"<li>{_e(f['path'])} ({f['bytes']} bytes, SHA-256 "
                      f"<code>{_e(f['sha256'][:16])}...</code>)</li>" for f in rep["footage"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>facesr camera profile: {_e(rep['camera'])}</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:left}}figure{{display:inline-block;margin:.5em}}img{{image-rendering:pixelated;
max-width:100%}}img.noise{{max-width:480px}}.note{{background:#fff6d6;padding:.5em}}</style></head><body>
<h1>Camera profile</h1>
<p><code>{_e(rep['camera'])}</code>; {made}.
Use it with <code>facesr upscale --model {_e(rep['camera'])} ...</code></p>
<p class="note">{_e(rep['notice'])}</p>
<h2>Synthetic check</h2>
<p>{syn['faces']} held-out clean faces at {syn['side']} px, degraded with this camera's
kernels, noise and compression as the model was trained (mean [95% interval]).</p>
<table id="synthetic"><tr><th>method</th>{heads}</tr>{rows}</table>
<p>Paired difference per face, {_e(paired.get('of', ''))}:</p>
<table id="paired"><tr><th>metric</th><th>mean [95% interval]</th></tr>{paired_rows}</table>
<h2>Real faces from the footage</h2>{faces or '<p>No face found.</p>'}
<h2>Blur kernels</h2><p>{_e(_kernel_setting(rep.get('kernel_settings', {})))}</p>
<img src="report/kernels.png" alt="kernels">
<table id="kernels"><tr><th>source</th><th>frame</th><th>major (HR px)</th><th>minor</th>
<th>angle (deg)</th></tr>{kern}</table>
{_edges_html(rep.get('edges'))}
<h2>Noise</h2>{noise_html}
<table id="relaxation"><tr><th>mu</th><th>gamma</th><th>phi</th><th>patches</th><th>used</th>
<th>why</th></tr>{relax}</table>
<h2>Compression</h2>{comp_html}
<h2>Training curve</h2>{_svg_curve(rep['curve'])}{dist_curve}
<p>Validation PSNR-Y (blue) and bicubic's (grey, dashed) on {syn['faces']} held-out crops.</p>
<h2>Stills sampled</h2><table id="sampled"><tr><th>still</th><th>use</th><th>why</th></tr>
{sampled}</table>
<h2>Footage</h2><ul>{footage}</ul>
<h2>Notes</h2><ul>{notes or '<li>none</li>'}</ul>
<h2>Files these numbers come from</h2><table id="files">{files}</table>
</body></html>
"""
