#!/usr/bin/env bash
# One prepared GPU run of the GAN stage at the paper's size (configs/gpu-gan.yaml: RRDB-23,
# HR 128, batch 16, bf16), for a fixed number of minutes, then the EMA generator packed as fp16.
#
#   bash scripts/gpu_gan.sh MINUTES FACES_DIR OUT_DIR
#
# FACES_DIR: clean target faces (a folder; e.g. 256 px copies of the training faces, small
# enough to travel to a lent GPU machine); pools/footage4.safetensors and pools/noise.safetensors
# must be there (make them with `facesr pool kernels` / `facesr pool noise`). At the time limit
# the run gets SIGINT, which makes `facesr train` write a checkpoint (resume it with
# `facesr train --resume OUT_DIR/run`). Not yet run on a GPU: no session has been lent one.
# Then facesr-gan v2's recipe on its generator G (model card, "What the weights are"):
#   facesr models interpolate facesr-rrdb23 G --alpha 0.5 --out v1.safetensors
#   python scripts/identity_finetune.py --init v1.safetensors --out runs/id --iters 100 \
#     --id-net mobilefacenet:PATH/mobilefacenet.json --device cuda    # M: runs/id/G_000100
#   facesr models interpolate M G --alpha 0.6 --out candidate.safetensors
# and choose on the validation faces as the card says.
set -euo pipefail
minutes=${1:?minutes}; faces=${2:?faces folder}; out=${3:?output folder}
mkdir -p "$out"
set +e
timeout -s INT -k 120 "${minutes}m" facesr train configs/gpu-gan.yaml --out "$out/run" \
  --set "data.hq=[$faces]" 2>&1 | tee "$out/train.log"
set -e
last=$(ls -d "$out"/run/ckpt/* | sort | tail -n 1)
facesr models pack "$last/G_ema.safetensors" --out "$out/gpu-gan.safetensors" --overwrite
cp "$out/run/metrics.jsonl" "$out/metrics.jsonl"
echo "packed $last -> $out/gpu-gan.safetensors"
