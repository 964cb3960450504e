# Sourced by the bench scripts (scripts/bench_*.sh): where builds go, and the load generator
# (and, when asked, nginx) they need, with what to do when one is missing.
#
#   . scripts/bench_tools.sh [nginx]
target="${CARGO_TARGET_DIR:-$HOME/.cache/compux-target}"
oha="$(command -v oha || echo "$HOME/.cache/compux-tools/bin/oha")"
[ -x "$oha" ] || { echo "oha is missing: cargo install --locked oha --root ~/.cache/compux-tools" >&2; exit 1; }
if [ "${1:-}" = nginx ]; then
    command -v nginx >/dev/null || { echo "nginx is missing: apt-get install nginx-light" >&2; exit 1; }
fi
