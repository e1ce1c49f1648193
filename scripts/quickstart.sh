#!/usr/bin/env bash
# The main job on the embedded default, offline: installs what it needs (scripts/setup_env.sh), then scores
# held-out Fashion-MNIST test images and degraded copies of them against the train split with the shipped
# fashion-mnist-cnn extractor. Prints the table; writes out/quickstart/records.json and samples.png.
# Extra arguments go to `geneval quickstart`, e.g. `scripts/quickstart.sh --num 2000`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
exec .venv/bin/geneval quickstart "$@"
