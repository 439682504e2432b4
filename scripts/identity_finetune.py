"""Experiment: fine-tune a generator with an identity term (dlib's face-ID network in torch).

Not part of ``facesr train`` (yet): the loop trains on random patches, an identity term needs
whole faces. Here whole faces are brought to ``--hr`` px, their 5 dlib landmarks found once
on the clean face, and each iteration degrades ``--batch`` of them afresh (the sharp-face
protocol's kind: anisotropic Gaussian blur, Gaussian noise sigma 8, JPEG 30; the blur range
scaled to the face size, ``--blur``), then minimises

    l_pix * L1 + l_color * colour (8x8 block means) + l_id * identity distance

where identity is the distance of dlib's 128-d descriptors of the output and the clean face,
both cut with the clean face's chip transform (``facesr.losses.identity``), or with
``--id-net mobilefacenet`` MobileFaceNet's or ``--id-net mobileface`` MobileFace's
(``facesr.losses.mobilefacenet``; networks that are not the identity metric's judge), their
distance scaled to dlib's units; a comma-separated list averages the networks' scaled
distances. Checkpoints
(fp16 safetensors, RRDBNet names) every ``--every`` iterations go to ``--out``.

    python scripts/identity_finetune.py --init facesr-gan --out runs/id-gan --iters 300
    python scripts/identity_finetune.py --init facesr-gan --out runs/id-mfn --iters 300 \
        --id-net mobilefacenet:PATH/mobilefacenet.json     # train against another network
    python scripts/identity_finetune.py --init v1.safetensors --out runs/id-ens --iters 100 \
        --id-net mobilefacenet:P/mobilefacenet.json,mobileface:P/mobileface.json
    python scripts/identity_finetune.py ... --camera configs/cpu-gan.yaml --camera-prob 0.5

With ``--camera CONFIG`` a share ``--camera-prob`` of the faces is degraded instead as that
training config's ``data`` section says (its preset, ``degrade`` overrides, kernel and noise
pools: for ``configs/cpu-gan.yaml`` the GAN stage's footage kernels and camera noise), so the
fine-tune also sees the camera degradations the model has to serve on real crops.

Training faces: ``configs/splits/sharp-train.txt`` (the London portraits facesr-gan's sharp
targets came from) and ``--utk N`` UTKFace faces outside ``utk-val``/``utk-test`` (the shared copy
holds no re-encoded twins any more). Validation and test faces are never read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facesr.data.inputs import load_pools
from facesr.degrade.degradation import DegradeConfig, Pools, degrade_batch, sample_degradation
from facesr.io import read_image_array, to_tensor, to_uint8
from facesr.losses.identity import DlibFaceID, face_chip_map, identity_loss
from facesr.losses.mobilefacenet import MobileFaceID, MobileFaceNetID
from facesr.metrics.identity import find_identity_models
from facesr.models import zoo
from facesr.models.rrdb import save_rrdb
from facesr.train.config import load_config
from facesr.train.steps import color_loss

ROOT = Path(__file__).resolve().parent.parent


def faces(n_utk: int, seed: int) -> list[Path]:
    lists = ROOT / "configs" / "splits"
    london = ROOT.parent / "shared" / "data" / "faces_hq" / "london512"
    # the list names scripts/sharp_splits.py's 256 px copies; read the originals instead
    train = [london / (Path(p).stem + ".jpg")
             for p in (lists / "sharp-train.txt").read_text().split()]
    from utk_faces import utk_training_faces

    return train + utk_training_faces(n_utk, np.random.default_rng(seed))


def prepare(paths: list[Path], hr: int, chip_map) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean faces at ``hr`` px and their chip maps for the identity networks (``chip_map``:
    landmarks -> (K, 2, 3), one map per network) of the face the identity metric scores."""
    imgs, maps = [], []
    for p in paths:
        img = cv2.resize(read_image_array(p), (hr, hr), interpolation=cv2.INTER_AREA)
        imgs.append(to_tensor(img))
        maps.append(torch.from_numpy(face_chip_map(np.ascontiguousarray(to_uint8(img)),
                                                  chip_map=chip_map)).float())
    return torch.stack(imgs), torch.stack(maps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", default="facesr-gan")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--hr", type=int, default=128)
    ap.add_argument("--blur", type=float, nargs=2, default=(0.4, 1.5))
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--l-pix", type=float, default=1.0)
    ap.add_argument("--l-color", type=float, default=1.0)
    ap.add_argument("--l-id", type=float, default=0.1,
                    help="weight of the identity distance, in dlib's units (another "
                         "network's distance is scaled by dlib's mean different-person "
                         "distance over its own)")
    ap.add_argument("--id-net", default="dlib",
                    help="the network(s) the identity term trains against, comma-separated "
                         "(their scaled distances averaged): dlib (the identity metric's own), "
                         "mobilefacenet[:PATH] or mobileface[:PATH] "
                         "(facesr.losses.mobilefacenet: not the judge)")
    ap.add_argument("--camera", type=Path, default=None, metavar="CONFIG",
                    help="a training config whose data section (preset, degrade, kernels, "
                         "noise) degrades a share --camera-prob of the faces")
    ap.add_argument("--camera-prob", type=float, default=0.5)
    ap.add_argument("--utk", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu",
                    help="where the generator and the identity network run (cpu, cuda); "
                         "faces are degraded on the CPU")
    a = ap.parse_args()
    if not 0.0 <= a.camera_prob <= 1.0:
        ap.error(f"--camera-prob must be in [0, 1], got {a.camera_prob}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(a.device)
    g, _ = zoo.load(a.init)
    g.to(device).train().requires_grad_(True)
    nets = []
    for spec in a.id_net.split(","):
        kind, _, path = spec.partition(":")
        if kind == "dlib":
            nets.append(DlibFaceID(path or find_identity_models()[1]))
        elif kind in ("mobilefacenet", "mobileface"):
            cls = MobileFaceNetID if kind == "mobilefacenet" else MobileFaceID
            nets.append(cls(path or None))
        else:
            ap.error(f"--id-net: dlib, mobilefacenet[:PATH] or mobileface[:PATH], not {spec!r}")
    nets = [n.eval().to(device) for n in nets]
    t0 = time.time()
    hr_all, maps = prepare(faces(a.utk, a.seed), a.hr,
                           lambda pts: np.stack([n.chip_map(pts) for n in nets]))
    print(f"{len(hr_all)} training faces at {a.hr} px ({time.time() - t0:.0f} s)", flush=True)
    cfg = DegradeConfig(kernel="gaussian", noise="gaussian", noise_sigma=8.0, jpeg_prob=1.0,
                        blur_sigma=tuple(a.blur))
    camera = None
    if a.camera is not None:
        data = load_config(a.camera).data
        camera_cfg = data.degradation()
        camera = (camera_cfg, load_pools(camera_cfg, data.kernels, data.noise))
    opt = torch.optim.Adam(g.parameters(), lr=a.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(a.seed)
    lr_size = (a.hr // 4, a.hr // 4)
    log = (a.out / "log.tsv").open("a")
    for it in range(1, a.iters + 1):
        idx = rng.choice(len(hr_all), size=a.batch, replace=False)
        hr = hr_all[idx]
        draws = [camera if camera is not None and rng.random() < a.camera_prob
                 else (cfg, Pools()) for _ in idx]
        lr = degrade_batch(hr, [sample_degradation(rng, pools, c, lr_size) for c, pools in draws])
        lr, hr = lr.to(device), hr.to(device)
        sr = g(lr)
        pix = (sr - hr).abs().mean()
        col = color_loss(sr, hr)
        ident = sum(identity_loss(n, sr.clamp(0, 1), hr, maps[idx, k].to(device))
                    * (DlibFaceID.different / n.different) for k, n in enumerate(nets)) / len(nets)
        loss = a.l_pix * pix + a.l_color * col + a.l_id * ident
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.write(f"{it}\t{pix.item():.5f}\t{col.item():.5f}\t{ident.item():.4f}\n")
        log.flush()
        if it % 10 == 0:
            print(f"it {it} l1 {pix.item():.4f} color {col.item():.4f} id {ident.item():.3f} "
                  f"({(time.time() - t0) / 60:.1f} min)", flush=True)
        if it % a.every == 0 or it == a.iters:
            save_rrdb(a.out / f"G_{it:06d}.safetensors", g, dtype=torch.float16,
                      source=f"scripts/identity_finetune.py from {a.init}, {it} iterations, "
                             f"l_id {a.l_id} against {a.id_net}"
                             + (f", {a.camera_prob:g} of faces degraded as {a.camera}"
                                if camera is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
