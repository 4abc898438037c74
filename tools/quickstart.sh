#!/usr/bin/env bash
# The main job on the embedded data, end to end: train pix2pix-flow on the MNIST pairs
# (A = digit, B = inverted digit), translate the test set, evaluate, export a SavedModel.
# Everything lands in $LOGDIR (default runs/quickstart): sample grids (A_samples_epoch_E.png: a
# row per temperature, a column per draw) and translation grids (A2B_epoch_E.png),
# z_A.npy / z_B.npy, eval.json + eval.png, TensorBoard events, checkpoints, saved_model/.
# Rerunning resumes training where it stopped and redoes the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGDIR=${LOGDIR:-runs/quickstart}
STEPS=${STEPS:-800}
bin=.venv/bin
[[ -x $bin/glow-train ]] || { echo "quickstart: run 'bash tools/setup.sh' first" >&2; exit 1; }
# mnist's preset (glow_tf2/presets.py: 3 levels x 8 steps, width 128, the pair one density
# under the coupled prior plus the translation loss), its whole budget of 800 steps: about half
# an hour on 2 CPU cores. STEPS=N trains N steps instead (STEPS=100 for a first look).
# No judging at each evaluation (--judge_samples=0) to keep it short: glow-eval judges at the end.
$bin/glow-train --problem=mnist --logdir="$LOGDIR" --train_steps="$STEPS" --judge_samples=0
$bin/glow-train --problem=mnist --logdir="$LOGDIR" --train_steps="$STEPS" --inference --judge_samples=0
$bin/glow-eval --logdir="$LOGDIR"
$bin/glow-export --logdir="$LOGDIR" --export_dir="$LOGDIR/saved_model" --overwrite
echo "quickstart: done; pictures and metrics are in $LOGDIR (A2B.png, B2A.png, eval.json, eval.png, eval_samples.png)"
