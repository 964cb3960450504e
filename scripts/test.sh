#!/usr/bin/env bash
# The project's test command (README): formatting, lints, IDL freshness, every test, and the
# mutation check (set COMPUX_SKIP_MUTANTS=1 to skip it locally).
# Builds go to a persistent target dir outside the clone (a cold build takes ~7 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/compux-target}"
export RUST_LOG="${RUST_LOG:-error}"

started=$SECONDS
step() {
    printf '\n==> %s  (%ss elapsed)\n' "$*" "$((SECONDS - started))"
}

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "idl/compux.json is fresh"
cargo run -q -p compux-idl -- --check

step "cargo test (program math + property tests, then the solana-program-test suite)"
cargo test --workspace

if [ "${COMPUX_SKIP_MUTANTS:-0}" != 1 ]; then
    step "mutation check: each security check removed in turn must fail a test"
    python3 scripts/mutation_check.py
fi

printf '\nall checks passed in %ss\n' "$((SECONDS - started))"
