#!/usr/bin/env bash
# The test command: installs what it needs (scripts/setup_env.sh), then runs the default test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh

set +e
# One pytest worker per core (pytest-xdist), each single-threaded: the tests are many small torch jobs, which
# two processes run faster than one process with two threads. Test files stay whole on one worker.
workers=${GENEVAL_TEST_WORKERS:-$(nproc --all)}  # before OMP_NUM_THREADS is set: nproc honours it
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m pytest -n "$workers" --dist loadfile --durations=25 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    # pytest's "no tests ran": never let an empty selection pass (or fail) silently.
    echo "scripts/test.sh: pytest collected no tests (exit 5) — treated as a failure" >&2
    exit 1
fi
exit "$status"
