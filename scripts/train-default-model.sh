#!/usr/bin/env bash
# How the shipped model (models/limbseg-default) is made: simulate the training cohort, then train the
# default architecture (smp U-Net, ResNet34 encoder, narrow decoder) on it. Meant for a machine with a GPU.
#
#   scripts/train-default-model.sh WORK_DIR [more `limbseg train` options]
#
# Environment: N_SUBJECTS (default 32), TIME_LIMIT minutes of training (default 4.5), JOBS (default: all
# cores), DEVICE (default auto), LIMBSEG (the command, default `limbseg`).
# Writes WORK_DIR/data (the cohort) and WORK_DIR/run (the run; WORK_DIR/run/model is the bundle to ship).
set -euo pipefail
work=${1:?usage: scripts/train-default-model.sh WORK_DIR [limbseg train options]}
shift
jobs=${JOBS:-$(nproc)}
limbseg=${LIMBSEG:-limbseg}
$limbseg synth -n "${N_SUBJECTS:-32}" -o "$work/data" --seed 1000 --contrast mixed --jobs "$jobs"
$limbseg train "$work/data" -o "$work/run" --encoder resnet34 --decoder-channels 128,64,32,16,16 \
    --image-size 192 --batch-size 32 --lr 1e-3 --lr-schedule cosine --epochs 1000 --patience 1000 \
    --time-limit "${TIME_LIMIT:-4.5}" --val-fraction 0.1 --workers "$((jobs > 1 ? jobs - 1 : 0))" \
    --device "${DEVICE:-auto}" --half --seed 0 "$@"
