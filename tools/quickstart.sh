#!/usr/bin/env bash
# The main job on the embedded data, end to end: train pix2pix-flow on the MNIST pairs
# (A = digit, B = inverted digit), translate the test set, evaluate, export a SavedModel.
# Everything lands in $LOGDIR (default runs/quickstart): sample and translation grids (PNG),
# z_A.npy / z_B.npy, eval.json + eval.png, TensorBoard events, checkpoints, saved_model/.
# Rerunning resumes training where it stopped and redoes the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGDIR=${LOGDIR:-runs/quickstart}
EPOCHS=${EPOCHS:-6}
bin=.venv/bin
[[ -x $bin/glow-train ]] || { echo "quickstart: run 'bash tools/setup.sh' first" >&2; exit 1; }
# A small model (3 levels x 4 steps, width 64) so that this takes minutes on 2 CPU cores;
# docs/train.md has the larger settings.
model=(--problem=mnist --n_levels=3 --depth=4 --width=64 --flow_permutation=lu
       --flow_coupling=affine --learntop)
$bin/glow-train "${model[@]}" --logdir="$LOGDIR" --joint_train --n_train=4500 --n_batch_train=32 \
  --epochs="$EPOCHS" --epochs_warmup=1 --epochs_full_valid=1 --epochs_full_sample=1 \
  --nogradient_checkpointing
$bin/glow-train "${model[@]}" --logdir="$LOGDIR" --inference
$bin/glow-eval --logdir="$LOGDIR"
$bin/glow-export --logdir="$LOGDIR" --export_dir="$LOGDIR/saved_model" --overwrite
echo "quickstart: done; pictures and metrics are in $LOGDIR (A2B.png, B2A.png, eval.json, eval.png)"
