#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine with Python 3.11 for geneval: a virtualenv in .venv with geneval
# installed editable (tests' extras included), and the Fashion-MNIST Debian package if it is missing.
# Sourced by scripts/quickstart.sh and scripts/test.sh; safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating virtualenv .venv" >&2
    "$PYTHON" -m venv .venv
fi
# torch/torchvision ranges in pyproject.toml admit the releases this machine serves from local disk.
if ! .venv/bin/python -c "import geneval, torch, torch_fidelity, pytorch_fid, prdc, build, matplotlib, vendi_score, timm, open_clip, ray" 2>/dev/null; then
    echo "setup: pip install -e .[test] (first run: a few minutes)" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
fi

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    echo "setup: installing the Debian package dataset-fashion-mnist" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
