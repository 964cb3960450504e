#!/usr/bin/env bash
# Runs a command on a loaded machine: one CPU hog per core beside it (at the same priority),
# so tests that depend on scheduling show themselves. Part of the routine before a submission:
#
#   bash scripts/with_load.sh env CI=true bash .ci/run
#
# COMPUX_HOGS sets the number of hogs (default: the number of cores).
set -euo pipefail
hogs=${COMPUX_HOGS:-$(nproc)}
pids=()
for _ in $(seq 1 "$hogs"); do
    # A shell loop that never sleeps: pure CPU, no I/O, no memory.
    (while :; do :; done) &
    pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
echo "with_load: $hogs CPU hogs beside: $*" >&2
"$@"
