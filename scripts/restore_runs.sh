#!/usr/bin/env bash
# Copy the committed run folders (leaderboards/checkpoints/*/) back to where training and re-scoring expect
# them (each folder's DESTINATION), after checking every file against its SHA256SUMS. An existing destination
# is left alone unless its checkpoint is older than the committed one (a newer local run is never overwritten).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for folder in leaderboards/checkpoints/*/; do
    folder=${folder%/}
    dest=$(cat "$folder/DESTINATION")
    (cd "$folder" && sha256sum --quiet -c SHA256SUMS) || { echo "restore_runs: $folder: sha256 mismatch, not restored" >&2; exit 1; }
    if [ -f "$dest/checkpoint.pt" ] && [ "$dest/checkpoint.pt" -nt "$folder/checkpoint.pt" ]; then
        echo "restore_runs: $dest is newer than $folder; kept" >&2
        continue
    fi
    # exactly the files SHA256SUMS lists (sub-folders such as evaluations/ included), each just verified
    while read -r _ name; do
        mkdir -p "$dest/$(dirname "$name")"
        cp -p "$folder/$name" "$dest/$name"
    done < "$folder/SHA256SUMS"
    echo "restore_runs: $folder → $dest" >&2
done
