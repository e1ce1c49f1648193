#!/usr/bin/env bash
# The small-budget GAN runs behind docs/gan/ and leaderboards/records/gan/ (Fashion-MNIST, 1 thread each, one
# at a time). Every command resumes where it stopped: rerun this script after an interruption. At the end the
# records and pictures are copied into leaderboards/records/gan/ and docs/gan/, and the table gan_small is built.
#   nohup scripts/gan_small_runs.sh > runs/gan/small.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
G=.venv/bin/geneval
mkdir -p runs/gan
$G train gan-baseline --dataset fashion-mnist --budget small --out runs/gan/baseline-small
$G train gan --preset dcgan --budget small --dataset fashion-mnist --threads 1 --out runs/gan/dcgan-small --resume
# class-conditional DCGAN (conditional BN in G, projection D) for the truncation sweep. No EMA: with decay 0.999
# from step 0 the averaged weights were noise for the first ~1000 steps (BigGAN starts its EMA late).
$G train gan --preset dcgan --budget small --dataset fashion-mnist --threads 1 --out runs/gan/cdcgan-small --resume \
  --set conditional=true --set g_cond=cbn --set d_cond=projection
$G train gan-truncation runs/gan/cdcgan-small --thresholds none,2,1.5,1,0.75,0.5,0.25 --num-samples 5000
# the same conditional DCGAN with BigGAN's ingredients (shared embedding, skip-z, orthogonal reg.): does it take
# truncation better?
$G train gan --preset dcgan --budget small --dataset fashion-mnist --threads 1 --out runs/gan/cdcgan-biggan-small \
  --resume --set conditional=true --set g_cond=cbn --set d_cond=projection --set shared_embedding=true \
  --set shared_dim=32 --set skip_z=true --set z_dim=120 --set ortho_beta=1e-4
$G train gan-truncation runs/gan/cdcgan-biggan-small --thresholds none,2,1.5,1,0.75,0.5,0.25 --num-samples 5000

# Keep what the table and docs/gan/ show: each record → leaderboards/records/gan/<run>.json, its pictures and
# truncation sweeps → docs/gan/<run>_<file>; then the table adopts the records.
for run in baseline-small dcgan-small cdcgan-small cdcgan-biggan-small; do
  cp "runs/gan/$run/record.json" "leaderboards/records/gan/$run.json"
  for file in samples_final.png samples_best.png curves.png truncation.png truncation_samples.png truncation.md \
              truncation.csv; do
    if [ -f "runs/gan/$run/$file" ]; then cp "runs/gan/$run/$file" "docs/gan/${run}_$file"; fi
  done
done
$G leaderboard run leaderboards/specs/gan_small.toml --no-train
