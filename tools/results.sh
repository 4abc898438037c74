#!/usr/bin/env bash
# The README's results, end to end: train each published run with its problem's preset
# (glow_tf2/presets.py), evaluate it, and draw the figures and tables into docs/results/.
#
#   bash tools/results.sh                      # every group, one after the other
#   bash tools/results.sh mnist fashion_mnist  # only these groups
#
# Groups: mnist and fashion_edges2shoes (pix2pix-flow: the coupled prior of the preset, the
# code loss it replaced, and no joint training),
# fashion_mnist and mnist_digits (one Glow). Runs land in $RUNS (default runs/); rerunning resumes
# an unfinished run and redoes its evaluation and figures.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
OUT=${OUT:-docs/results}
bin=.venv/bin
[[ -x $bin/glow-train ]] || { echo "results: run 'bash tools/setup.sh' first" >&2; exit 1; }

train_and_eval() {  # name, glow-train flags...
  local name=$1; shift
  $bin/glow-train --logdir="$RUNS/$name" "$@"
  $bin/glow-eval --logdir="$RUNS/$name"
}

paired_run() {  # name, glow-train flags: train, evaluate, A2B.png / B2A.png from the best checkpoints
  local name=$1; shift
  train_and_eval "$name" "$@"
  $bin/glow-train --logdir="$RUNS/$name" "$@" --inference  # the run's own flags: its objective
}

paired() {  # problem, manipulated label, flags of its code-loss run: the preset (coupled prior),
  # code loss, none
  local problem=$1 label=$2; shift 2
  paired_run "$problem" --problem="$problem"
  paired_run "${problem}_code_all" --problem="$problem" "$@"
  paired_run "${problem}_nojoint" --problem="$problem" --nojoint_train
  $bin/glow-report --runs="$RUNS/$problem,$RUNS/${problem}_code_all,$RUNS/${problem}_nojoint" \
    --labels="coupled (preset),code_all,no joint" --output_dir="$OUT" --name="$problem" \
    --manipulate_label="$label"
}

single() {  # problem: one Glow
  local problem=$1
  train_and_eval "$problem" --problem="$problem"
  $bin/glow-report --runs="$RUNS/$problem" --labels="$problem" --output_dir="$OUT" --name="$problem" \
    --pixel_baseline
}

all=(mnist fashion_edges2shoes fashion_mnist mnist_digits)
groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=("${all[@]}")
for group in "${groups[@]}"; do  # check every name before hours of training
  [[ " ${all[*]} " == *" $group "* ]] || {
    echo "results: unknown group '$group' (${all[*]})" >&2; exit 2; }
done
for group in "${groups[@]}"; do
  case $group in
    # The code-loss runs are the presets before the coupled prior (2026-11-27): code_all at 10x,
    # edges2shoes with the translation loss, mnist without.
    # The manipulations go towards digit 7 (the demo's) and ankle boot.
    mnist) paired mnist 7 --code_loss_type=code_all --translation_loss_scale=0 ;;
    fashion_edges2shoes) paired fashion_edges2shoes 2 --code_loss_type=code_all ;;
    *) single "$group" ;;
  esac
done
echo "results: done; figures and tables in $OUT"
