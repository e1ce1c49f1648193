#!/usr/bin/env bash
# Run the `small` budget of every likelihood model, one at a time on one core, resumably, and copy each
# finished run's record and sample grid into leaderboards/records/likelihood/<model>-<dataset>/.
# Re-running skips finished runs and resumes interrupted ones. Then the table (adopts these records):
#   geneval leaderboard run leaderboards/specs/likelihood_*.toml --no-train
#
#   nohup leaderboards/likelihood_small.sh > runs/likelihood_small.log 2>&1 &
#   leaderboards/likelihood_small.sh fashion-mnist pixelcnn      # one dataset and/or some models only
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
DATASETS="${1:-binarized-mnist fashion-mnist}"
shift || true
MODELS="${*:-fvsbn made nade pixelcnn gated-pixelcnn vae}"
for dataset in $DATASETS; do
  for model in $MODELS; do
    out="runs/likelihood/${model}-${dataset}"
    keep="leaderboards/records/likelihood/${model}-${dataset}"
    echo "$(date -u +%FT%TZ) start ${model} ${dataset}"
    if .venv/bin/geneval train "$model" --dataset "$dataset" --budget small --out "$out" --resume; then
      mkdir -p "$keep"
      cp "$out/record.json" "$keep/record.json"
      for png in "$out"/*.png; do cp "$png" "$keep/"; done
      echo "$(date -u +%FT%TZ) done ${model} ${dataset}"
    else
      echo "$(date -u +%FT%TZ) FAILED ${model} ${dataset}"
    fi
  done
done
