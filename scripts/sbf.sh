#!/usr/bin/env bash
# Builds programs/compux to an SBPF v3 ELF, target/deploy/compux.so, from the package
# registries alone (the Solana platform tools cannot be downloaded here).
#
#   bash scripts/sbf.sh            set the toolchain up if missing, then build the ELF and
#                                  the VM that runs it (target/deploy/compux-svm)
#   bash scripts/sbf.sh --setup    only set the toolchain up
#
# The toolchain lives outside the clone, in $COMPUX_SBF_HOME (default ~/.cache/compux-sbf),
# and is rebuilt only when its pinned versions change:
#   - rustc and the std sources: Debian bookworm-security's rustc-web / rust-web-src 1.96
#     (rustc with the BPF backend), unpacked, not installed;
#   - LLVM 23 static libraries with BPF: PyPI mlc-llvm-static(-extra-targets) 23.1.1;
#   - the linker: crates.io sbpf-linker 0.2.6, built against that LLVM;
#   - std patched for target_os = "solana" (scripts/sbf/patch_std.py), a target spec
#     (scripts/sbf/bpfel-solana.json), and i128 libcalls in the calling convention LLVM 23's
#     BPF backend uses (scripts/sbf/patch_builtins.py on crates.io solana-compiler-builtins).
# The program is built from a copy of the workspace under the toolchain directory, so the
# toolchain's dependency patch never touches this repository's Cargo.lock.
# Why this route, what it produces and how a real deployment differs: docs/sbf.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUSTC_WEB_VERSION="1.96.0+dfsg1-1~deb12u2"
LLVM_WHEEL_VERSION="23.1.1.post0"
SBPF_LINKER_VERSION="0.2.6"
BUILTINS_VERSION="0.3.0"
STAMP="rustc-web=$RUSTC_WEB_VERSION llvm=$LLVM_WHEEL_VERSION sbpf-linker=$SBPF_LINKER_VERSION builtins=$BUILTINS_VERSION patches=$(cat scripts/sbf/* | sha256sum | cut -c1-16)"
SBF_HOME="${COMPUX_SBF_HOME:-$HOME/.cache/compux-sbf}"

say() { printf 'sbf: %s\n' "$*" >&2; }
fail() {
    printf 'sbf: error: %s\n' "$1" >&2
    [ -n "${2:-}" ] && printf 'sbf: what to do: %s\n' "$2" >&2
    exit 1
}

setup() {
    if [ -f "$SBF_HOME/ready" ] && [ "$(cat "$SBF_HOME/ready")" = "$STAMP" ]; then
        return
    fi
    local started=$SECONDS
    say "setting up the SBF toolchain in $SBF_HOME (once; about 5 minutes on 2 cores)"
    rm -rf "$SBF_HOME"
    mkdir -p "$SBF_HOME"/{debs,root,pypi,zstd}

    say "1/5 rustc-web $RUSTC_WEB_VERSION and its std sources (Debian)"
    local debs=("rustc-web=$RUSTC_WEB_VERSION" "libstd-rust-web-1.96=$RUSTC_WEB_VERSION"
        "libstd-rust-web-dev=$RUSTC_WEB_VERSION" "rust-web-src=$RUSTC_WEB_VERSION" libllvm22 libzstd-dev)
    download() { (cd "$SBF_HOME/debs" && apt-get download -qq -o APT::Sandbox::User=root "${debs[@]}" >/dev/null); }
    if ! download; then
        # A fresh machine's package lists may predate the pinned version.
        [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null
        download || fail "Debian does not serve rustc-web $RUSTC_WEB_VERSION here" \
            "run apt-get update (as root); if it still fails, set RUSTC_WEB_VERSION in scripts/sbf.sh to a 1.96+ version \`apt-cache madison rustc-web\` lists and re-check scripts/sbf/patch_std.py"
    fi
    for deb in "$SBF_HOME"/debs/{rustc-web,libstd-rust-web,rust-web-src,libllvm22}*.deb; do
        dpkg -x "$deb" "$SBF_HOME/root"
    done
    dpkg -x "$SBF_HOME"/debs/libzstd-dev_*.deb "$SBF_HOME/zstd"

    say "2/5 LLVM $LLVM_WHEEL_VERSION static libraries with the BPF backend (PyPI)"
    python3 -m pip download -q --no-deps -d "$SBF_HOME/pypi" \
        "mlc-llvm-static==$LLVM_WHEEL_VERSION" "mlc-llvm-static-extra-targets==$LLVM_WHEEL_VERSION" \
        || fail "PyPI no longer serves mlc-llvm-static $LLVM_WHEEL_VERSION" \
            "set LLVM_WHEEL_VERSION in scripts/sbf.sh to a 23.x version \`pip index versions mlc-llvm-static\` lists (bpf-linker's llvm-23 feature needs LLVM 23)"
    python3 -c 'import glob, sys, zipfile
for w in glob.glob(sys.argv[1] + "/mlc_llvm_static*.whl"): zipfile.ZipFile(w).extractall(sys.argv[1])' "$SBF_HOME/pypi"
    local llvm="$SBF_HOME/pypi/mlc_llvm_static/static"
    chmod +x "$llvm/bin/llvm-config"
    "$llvm/bin/llvm-config" --targets-built | grep -qw BPF || fail "the LLVM wheel has no BPF backend" \
        "check that mlc-llvm-static-extra-targets $LLVM_WHEEL_VERSION was downloaded next to mlc-llvm-static"

    say "3/5 std patched for target_os = \"solana\""
    python3 scripts/sbf/patch_std.py "$SBF_HOME/root/usr/lib/rustlib/src/rust/library"
    cp scripts/sbf/bpfel-solana.json "$SBF_HOME/bpfel-solana.json"

    say "4/5 sbpf-linker $SBPF_LINKER_VERSION against LLVM 23 (crates.io; about 2 minutes)"
    env -u LD_LIBRARY_PATH PATH="$llvm/bin:$PATH" LLVM_PREFIX="$llvm" LLVM_SYS_231_PREFIX="$llvm" \
        LIBZSTD_PATH="$SBF_HOME/zstd/usr/lib/x86_64-linux-gnu" ZLIB_PATH=/usr/lib/x86_64-linux-gnu \
        CARGO_TARGET_DIR="$SBF_HOME/linker-target" \
        cargo install -q "sbpf-linker@$SBPF_LINKER_VERSION" --locked --root "$SBF_HOME/tools" \
        --no-default-features --features bpf-linker/llvm-23,bpf-linker/llvm-link-static \
        || fail "cargo could not build sbpf-linker $SBPF_LINKER_VERSION" \
            "if crates.io no longer serves it, set SBPF_LINKER_VERSION to a release whose bpf-linker has the llvm-23 feature"
    rm -rf "$SBF_HOME/linker-target"

    say "5/5 solana-compiler-builtins $BUILTINS_VERSION with LLVM 23's i128 libcall convention"
    local fetch="$SBF_HOME/builtins-fetch"
    mkdir -p "$fetch/src"
    printf '[package]\nname = "builtins-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nsolana-compiler-builtins = "=%s"\n' \
        "$BUILTINS_VERSION" >"$fetch/Cargo.toml"
    touch "$fetch/src/lib.rs"
    local src
    src=$(cd "$fetch" && cargo metadata -q --format-version 1 | python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "solana-compiler-builtins").rsplit("/", 1)[0])') \
        || fail "crates.io no longer serves solana-compiler-builtins $BUILTINS_VERSION" "set BUILTINS_VERSION in scripts/sbf.sh"
    cp -r "$src" "$SBF_HOME/solana-compiler-builtins"
    python3 scripts/sbf/patch_builtins.py "$SBF_HOME/solana-compiler-builtins/src/lib.rs"
    rm -rf "$fetch" "$SBF_HOME/debs" "$SBF_HOME"/pypi/*.whl

    echo "$STAMP" >"$SBF_HOME/ready"
    say "toolchain ready in $((SECONDS - started)) s ($(du -sh "$SBF_HOME" | cut -f1))"
}

build() {
    local work="$SBF_HOME/work" started=$SECONDS
    say "building programs/compux for SBF (SBPF v3)"
    # A copy of the workspace with only the program, the same Cargo.lock, and the
    # toolchain's builtins: the repository itself stays as it is.
    rm -rf "$work/programs"
    mkdir -p "$work/programs" "$work/.cargo"
    cp -r programs/compux "$work/programs/compux"
    cp Cargo.lock "$work/Cargo.lock"
    python3 - "$ROOT/Cargo.toml" "$work" "$SBF_HOME" "$BUILTINS_VERSION" <<'PY'
import re, sys
root, work, home, builtins = sys.argv[1:]
text = open(root).read()
text = re.sub(r'(?m)^members = \[.*\]$', 'members = ["programs/compux"]', text)
text += f'\n[patch.crates-io]\nsolana-compiler-builtins = {{ path = "{home}/solana-compiler-builtins" }}\n'
open(f"{work}/Cargo.toml", "w").write(text)
manifest = f"{work}/programs/compux/Cargo.toml"
open(manifest, "a").write(f'\n[target.\'cfg(target_os = "solana")\'.dependencies]\nsolana-compiler-builtins = "={builtins}"\n')
lib = f"{work}/programs/compux/src/lib.rs"
open(lib, "a").write('\n// i128 libcalls for the upstream-LLVM SBF build (scripts/sbf.sh).\n#[cfg(target_os = "solana")]\nuse solana_compiler_builtins as _;\n')
PY
    cat >"$work/.cargo/config.toml" <<TOML
[build]
target = "$SBF_HOME/bpfel-solana.json"

[target.bpfel-solana]
linker = "$SBF_HOME/tools/bin/sbpf-linker"

[unstable]
build-std = ["std", "panic_abort"]
build-std-features = []
json-target-spec = true
TOML
    # Every syscall is exported, or bpf-linker internalises the declarations and LLVM drops
    # their arguments.
    local syscalls=abort,sol_alt_bn128_compression,sol_alt_bn128_group_op,sol_big_mod_exp,sol_blake3
    syscalls+=,sol_create_program_address,sol_curve_group_op,sol_curve_multiscalar_mul,sol_curve_pairing_map
    syscalls+=,sol_curve_decompress,sol_curve_validate_point,sol_get_clock_sysvar,sol_get_epoch_rewards_sysvar
    syscalls+=,sol_get_epoch_schedule_sysvar,sol_get_epoch_stake,sol_get_fees_sysvar,sol_get_last_restart_slot
    syscalls+=,sol_get_leader,sol_get_processed_sibling_instruction,sol_get_rent_sysvar,sol_get_return_data
    syscalls+=,sol_get_stack_height,sol_get_sysvar,sol_invoke_signed_c,sol_invoke_signed_rust,sol_keccak256
    syscalls+=,sol_keccak_p1600,sol_log_,sol_log_64_,sol_log_compute_units_,sol_log_data,sol_log_pubkey
    syscalls+=,sol_memcmp_,sol_memcpy_,sol_memmove_,sol_memset_,sol_panic_,sol_poseidon
    syscalls+=,sol_remaining_compute_units,sol_secp256k1_recover,sol_set_return_data,sol_sha256,sol_sha512
    syscalls+=,sol_try_find_program_address
    (cd "$work" && env \
        LD_LIBRARY_PATH="$SBF_HOME/root/usr/lib/x86_64-linux-gnu" \
        RUSTC="$SBF_HOME/root/usr/bin/rustc" \
        RUSTC_BOOTSTRAP=1 RUSTC_BOOTSTRAP_SYNTHETIC_TARGET=1 \
        RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Cpasses=lower-atomic -Clink-arg=--export=$syscalls -Clink-arg=--llvm-args=-bpf-stack-size=4096" \
        CARGO_TARGET_DIR="$SBF_HOME/target" \
        cargo build -q --release -p compux) \
        || fail "the SBF build of programs/compux failed (above)" \
            "code that builds natively but not for SBF usually needs a host-only path removed or a large value boxed"
    local so
    so=$(find "$SBF_HOME/target/bpfel-solana/release" -maxdepth 1 -name 'libcompux.so' -print -quit)
    [ -n "$so" ] || fail "the build produced no libcompux.so under $SBF_HOME/target/bpfel-solana/release"
    mkdir -p target/deploy
    cp "$so" target/deploy/compux.so
    say "target/deploy/compux.so: $(stat -c %s target/deploy/compux.so) bytes in $((SECONDS - started)) s"
}

# The VM the test suite and the localnet run the ELF in: LiteSVM 0.17 (agave 4.3's SBPF v3),
# its own workspace (tools/svm/Cargo.toml says why), built with the host's cargo into the
# persistent target dir. Its agave crates declare Rust 1.97.1; they build with 1.95.
build_vm() {
    local started=$SECONDS target="${CARGO_TARGET_DIR:-$HOME/.cache/compux-target}"
    say "building the VM that runs it, tools/svm (LiteSVM; about 4 minutes the first time)"
    CARGO_TARGET_DIR="$target" cargo build -q --release --locked --ignore-rust-version \
        --manifest-path tools/svm/Cargo.toml \
        || fail "tools/svm (LiteSVM) did not build (above)" \
            "if a pinned crate is no longer served, change the pins in tools/svm/Cargo.toml together (LiteSVM and the agave version it was released with)"
    mkdir -p target/deploy
    cp "$target/release/compux-svm" target/deploy/compux-svm
    say "target/deploy/compux-svm ready in $((SECONDS - started)) s"
}

case "${1:-}" in
    --setup) setup ;;
    "") setup && build && build_vm ;;
    -h | --help) sed -n '2,20p' "$0" ;;
    *) fail "unknown argument $1" "see bash scripts/sbf.sh --help" ;;
esac
