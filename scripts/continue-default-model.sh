#!/usr/bin/env bash
# Continue training the shipped model (models/limbseg-default) with the current recipe, on a CPU or a GPU:
# simulate a training cohort (unless WORK_DIR/data exists), then fine-tune from the shipped weights
# (--init-from) for TIME_LIMIT minutes. This is how each CPU stage in docs/model-card.md was made.
#
#   scripts/continue-default-model.sh WORK_DIR [more `limbseg train` options]
#
# Environment: N_SUBJECTS (default 100), TIME_LIMIT minutes (default 60), INIT_FROM (default the shipped
# bundle), JOBS (default: all cores), DEVICE (default auto), LIMBSEG (the command, default `limbseg`).
# Writes WORK_DIR/data (the cohort, seeds 1000..) and WORK_DIR/run (WORK_DIR/run/model is the new bundle;
# WORK_DIR/run/fold0/checkpoint.pt lets `--resume` carry on). Test subjects must use other seeds (9000..).
set -euo pipefail
work=${1:?usage: scripts/continue-default-model.sh WORK_DIR [limbseg train options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-$(nproc)}
limbseg=${LIMBSEG:-limbseg}
if [ ! -f "$work/data/dataset.json" ]; then
    $limbseg synth -n "${N_SUBJECTS:-100}" -o "$work/data" --seed 1000 --contrast mixed --jobs "$jobs"
fi
$limbseg train "$work/data" -o "$work/run" --init-from "${INIT_FROM:-$here/models/limbseg-default}" \
    --image-size 128 --batch-size 16 --lr 3e-4 --lr-schedule cosine --epochs 1000 --patience 1000 \
    --max-slices-per-epoch 1200 --val-fraction 0.05 --val-slice-stride 3 --loss dicece \
    --time-limit "${TIME_LIMIT:-60}" --workers "$jobs" --device "${DEVICE:-auto}" --half --seed 0 "$@"
