#!/usr/bin/env bash
# The project's test command (README): formatting, lints, IDL freshness, every test natively,
# the program built to SBF and the whole integration suite again on that ELF in a metered VM
# with its compute units held, and the mutation check (COMPUX_SKIP_MUTANTS=1 skips it).
# Builds go to a persistent target dir outside the clone (a cold build takes ~7 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/compux-target}"
export RUST_LOG="${RUST_LOG:-error}"

started=$SECONDS
step() {
    printf '\n==> %s  (%ss elapsed)\n' "$*" "$((SECONDS - started))"
}

# Steps that only need their own inputs run in the background from the moment they can
# start, their output kept in a log and shown, whole, where the step sits in this list: the
# SBF toolchain's downloads and the linker's and the VM's serial builds fill the gaps of the
# native build, and the Postgres run (mostly waiting on sockets) overlaps the ELF suite
# (all CPU). CI times before and after: README, "Two commands".
jobs_dir=$(mktemp -d)
pids=()
# Each in a process group of its own (setsid), so that stopping the run stops their children.
cleanup() {
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    rm -rf "$jobs_dir"
}
trap cleanup EXIT
background() {
    local name=$1
    shift
    setsid "$@" >"$jobs_dir/$name.log" 2>&1 &
    pids+=("$!")
    echo "$!" >"$jobs_dir/$name.pid"
    echo "$SECONDS" >"$jobs_dir/$name.start"
}
# Waits for a background step, shows its output, and fails the run if it failed.
finish() {
    local name=$1 status=0
    wait "$(cat "$jobs_dir/$name.pid")" || status=$?
    cat "$jobs_dir/$name.log"
    printf '(%s: ran in the background from %ss, finished at %ss)\n' "$name" \
        "$(($(cat "$jobs_dir/$name.start") - started))" "$((SECONDS - started))"
    if [ "$status" != 0 ]; then
        echo "error: the step above ($name) failed with status $status" >&2
        exit "$status"
    fi
}

background sbf bash scripts/sbf.sh
background idl cargo run -q -p compux-idl -- --check
[ -n "${COMPUX_TEST_POSTGRES_URL:-}" ] || background pgsetup bash scripts/postgres.sh

step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --check --manifest-path tools/svm/Cargo.toml

step "cargo clippy --all-targets (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "idl/compux.json is fresh"
finish idl

step "cargo test (program math + property tests, then the integration suite, the program native)"
cargo test --workspace
# The test executables just built, as "package directory<TAB>executable": the runs below
# (the ELF, Postgres) use them as they are. `cargo test -p <one package>` would resolve
# features for that package alone and rebuild half the workspace.
cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["target"]["name"] + "\t" + m["executable"])
' >"$jobs_dir/tests.tsv"
# Runs every test executable of the package in directory $1 (from that directory, as cargo
# does) with the arguments that follow.
run_tests() {
    local dir=$1 found=0 failed=0
    shift
    while IFS=$'\t' read -r package target exe; do
        [ "$package" = "$PWD/$dir" ] || continue
        found=1
        echo "     Running $target ($exe)"
        (cd "$dir" && "$exe" "$@") || failed=1
    done <"$jobs_dir/tests.tsv"
    [ "$found" = 1 ] || { echo "error: no test executable of $dir was built" >&2; return 1; }
    return "$failed"
}

step "the program built to SBF: target/deploy/compux.so (scripts/sbf.sh; toolchain cached in \${COMPUX_SBF_HOME:-~/.cache/compux-sbf})"
pg_url="${COMPUX_TEST_POSTGRES_URL:-}"
if [ -z "$pg_url" ]; then
    finish pgsetup
    pg_url=$(tail -1 "$jobs_dir/pgsetup.log")
fi
export -f run_tests
export jobs_dir
background postgres env COMPUX_TEST_LEDGER=postgres COMPUX_TEST_POSTGRES_URL="$pg_url" bash -c 'run_tests app/relayer -q'
finish sbf

step "the integration suite again, the program as its SBF ELF in a metered VM (LiteSVM); compute units within budget"
COMPUX_PROGRAM_SO="$PWD/target/deploy/compux.so" run_tests tests --nocapture compute_units
COMPUX_PROGRAM_SO="$PWD/target/deploy/compux.so" run_tests tests --skip compute_units

step "the relayer's tests again on PostgreSQL (the same tests, a fresh database each)"
finish postgres

step "@solana/web3.js, Anchor's TypeScript client and the official OpenAI (Node, Python) and Anthropic (Python) clients against \`compux up\` (the program as its ELF)"
# Built by `cargo test --workspace` already (the CLI's tests run it); the same member set
# finds it fresh.
cargo build -q --workspace --bin compux
# The mutation check (CPU: its own build of the switched program, then the suite once per
# check) runs beside the client checks (mostly downloads and waiting on sockets); its output
# is shown, whole, at its own step below. Started after the build above: two cargo runs on one
# target directory would wait on each other's lock.
mutants=0
if [ "${COMPUX_SKIP_MUTANTS:-0}" != 1 ]; then
    background mutants python3 scripts/mutation_check.py
    mutants=1
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
    scratch="$jobs_dir/clients"
    mkdir -p "$scratch"
    "$CARGO_TARGET_DIR/debug/compux" up --rpc-port 0 --relayer-port 0 --json --data-dir "$scratch/up" \
        --config migrations/market.toml >"$scratch/up.json" 2>"$scratch/up.log" &
    up_pid=$!
    pids+=("$up_pid")
    for _ in $(seq 1 120); do
        [ -s "$scratch/up.json" ] && break
        kill -0 "$up_pid" 2>/dev/null || { cat "$scratch/up.log" >&2; echo "compux up exited" >&2; exit 1; }
        sleep 0.5
    done
    read -r url market relayer key < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["rpc_url"], s["market"], s["relayer_url"], s["api_key"])' "$scratch/up.json")
    # Built, the ELF is what `compux up` runs.
    grep -q '"program":"SBF ELF' "$scratch/up.json" || { echo "compux up did not run the SBF ELF:" >&2; cat "$scratch/up.json" >&2; exit 1; }
    node tests/node/localnet_check.mjs "$url" "$market"
    node tests/node/openai_check.mjs "$relayer" "$key"
    # The official Python clients, pinned, in a virtual environment kept outside the clone.
    venv="${COMPUX_PY_HOME:-$HOME/.cache/compux-py}"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
    "$venv/bin/python" tests/clients/check.py "$relayer" "$key"
    kill "$up_pid" 2>/dev/null || true
else
    echo "node and npm are missing: .ci/run installs them; skipped here" >&2
fi

if [ "$mutants" = 1 ]; then
    step "mutation check: each security check removed in turn must fail a test"
    finish mutants
fi

printf '\nall checks passed in %ss\n' "$((SECONDS - started))"
