#!/usr/bin/env bash
# Commit-ready copy of a run folder: scripts/keep_run.sh RUN_DIR → leaderboards/checkpoints/<name>/ with every
# file of the run (evaluations/ included; not samples.npz) listed in SHA256SUMS and the run's path in
# DESTINATION, so scripts/restore_runs.sh can put it back in a later session.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=${1:?usage: scripts/keep_run.sh RUN_DIR}
run=${run%/}
[ -f "$run/checkpoint.pt" ] || { echo "keep_run: $run has no checkpoint.pt" >&2; exit 1; }
keep="leaderboards/checkpoints/$(basename "$run")"
# git hosts refuse files over 100 MB: a run whose checkpoint is larger must finish within one session instead
too_big=$(cd "$run" && find . -type f ! -name '*.npz' ! -name '*.tmp' -size +95M | sed 's|^\./||' | head -1)
[ -z "$too_big" ] || { echo "keep_run: $run/$too_big is $(( $(stat -c %s "$run/$too_big") / 1048576 )) MB, over the 95 MB a git host takes per file; not kept" >&2; exit 1; }
rm -rf "$keep.tmp" && mkdir -p "$keep.tmp"
(cd "$run" && find . -type f ! -name '*.npz' ! -name '*.tmp' | sed 's|^\./||' | sort) > "$keep.tmp/.files"
while read -r name; do
    mkdir -p "$keep.tmp/$(dirname "$name")"
    cp -p "$run/$name" "$keep.tmp/$name"
done < "$keep.tmp/.files"
(cd "$keep.tmp" && xargs -d '\n' sha256sum < .files > SHA256SUMS && rm .files)
echo "$run" > "$keep.tmp/DESTINATION"
rm -rf "$keep" && mv "$keep.tmp" "$keep"
echo "keep_run: $run → $keep" >&2
