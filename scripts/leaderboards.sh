#!/usr/bin/env bash
# The leaderboard tables that need real training (Fashion-MNIST, small budgets): $JOBS training processes
# (default 1) of one thread each, shared by all the specs. Resumable at every level: rerun after an interruption
# and recorded (row, seed) are skipped, finished run folders adopted, interrupted ones resumed exactly.
#
#   nohup scripts/leaderboards.sh > runs/leaderboards.log 2>&1 &
#   scripts/leaderboards.sh sagan_attention          # some specs only
#   JOBS=2 nice scripts/leaderboards.sh              # one run per core
#
# Then commit what was produced (records carry everything the tables show):
#   git add leaderboards/records/<name>.jsonl leaderboards/tables/<name>.* leaderboards/tables/<name>_*.png \\
#           leaderboards/tables/index.html
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
mkdir -p runs/leaderboards
SPECS="${*:-biggan_ablation cross_family sagan_attention}"
paths=()
for spec in $SPECS; do paths+=("leaderboards/specs/${spec}.toml"); done
# One call: the specs share the pool of $JOBS processes, so no core idles between tables.
echo "$(date -u +%FT%TZ) start ${SPECS}"
if .venv/bin/geneval leaderboard run "${paths[@]}" --jobs "${JOBS:-1}" --runs-dir runs/leaderboards; then
  echo "$(date -u +%FT%TZ) done ${SPECS}"
else
  echo "$(date -u +%FT%TZ) FAILED ${SPECS} (rerun to resume)"
  exit 1
fi
