#!/usr/bin/env bash
# The relayer's added latency and throughput measured from outside the process
# (docs/benchmarks.md, "From outside the process"): an open-loop generator with latency
# correction (oha) against an instant upstream (nginx returning a canned OpenAI reply), the
# relayer's release build with metering, holds, the ledger and the settler on, against a
# chain from `compux up`. Not run by CI (it takes minutes and wants an idle machine).
#
#   bash scripts/bench_external.sh            # needs nginx (apt) and oha (cargo install --locked oha)
#
# Prints, per rate, the upstream alone, a bare axum + reqwest pass-through (the floor of the
# relayer's stack) and the relayer (p50/p99/max), then the most requests per second each
# serves with 64 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_tools.sh nginx
echo "building the relayer (release)..." >&2
CARGO_TARGET_DIR="$target" cargo build --release -q -p compux-cli
CARGO_TARGET_DIR="$target" cargo build --release -q -p compux-relayer-bench --bin bare-proxy
compux="$target/release/compux"

work="$(mktemp -d)"
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

# The instant upstream.
reply='{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"compux-sim-chat","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:18081;
        location / { default_type application/json; return 200 '$reply'; }
    }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"

# A chain with the demo market and the startup's credits; the demo relayer idles.
echo "starting compux up..." >&2
"$compux" up --rpc-port 0 --relayer-port 0 --json --data-dir "$work/up" --settle-flush-secs 2 \
    > "$work/up.json" 2> "$work/up.err" &
for _ in $(seq 1 600); do [ -s "$work/up.json" ] && break; sleep 0.1; done
key="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"])' "$work/up.json")"

# The measured relayer: the demo configuration, both providers at the instant upstream, its
# own ledger, the settler on; logs as `compux relayer` writes them by default.
python3 - "$work/up/relayer.toml" "$work/up/bench.toml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'listen = "[^"]*"', 'listen = "127.0.0.1:18090"', text)
text = re.sub(r'base_url = "[^"]*"', 'base_url = "http://127.0.0.1:18081/v1"', text)
text = text.replace('ledger = "relayer-ledger.sqlite"', 'ledger = "bench-ledger.sqlite"')
open(sys.argv[2], "w").write(text)
EOF
# BENCH_LOG=warn drops the access line per request; BENCH_SETTLER=off drops the [settler].
[ "${BENCH_SETTLER:-on}" = off ] && python3 - "$work/up/bench.toml" <<'EOF2'
import re, sys
text = open(sys.argv[1]).read()
open(sys.argv[1], "w").write(re.sub(r"\n\[settler\]\n(?:[a-z_]+ = .*\n)+", "\n", text))
EOF2
COMPUX_LOG="${BENCH_LOG:-warn,compux_relayer=info}" "$compux" relayer --config "$work/up/bench.toml" > /dev/null 2> "$work/relayer.err" &
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18090/health/ready > /dev/null && break; sleep 0.1; done

body='{"model": "compux-sim-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}'
run() { # url, oha options...
    local url="$1"; shift
    "$oha" --no-tui --output-format json -m POST -H "Authorization: Bearer $key" -H "Content-Type: application/json" -d "$body" "$@" "$url"
}
summary() { # oha's JSON -> "rps p50 p99 max" in ms
    python3 -c '
import json, sys
r = json.load(sys.stdin)
s, p = r["summary"], r["latencyPercentiles"]
ms = lambda v: (v or 0) * 1000
print("%8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms  ok %.4f" % (s["requestsPerSec"], ms(p["p50"]), ms(p["p99"]), ms(s["slowest"]), s["successRate"]))'
}
upstream=http://127.0.0.1:18081/v1/chat/completions
relayer=http://127.0.0.1:18090/v1/chat/completions
# The floor of the stack: axum in, reqwest out, nothing else (tools/relayer-bench/src/bin).
"$target/release/bare-proxy" 127.0.0.1:18091 "$upstream" &
floor=http://127.0.0.1:18091/v1/chat/completions
for rate in 1000 5000; do
    echo "open loop at $rate req/s for 10 s (latency corrected):"
    printf '  upstream alone   '; run "$upstream" -q "$rate" -z 10s --latency-correction -c 64 | summary
    printf '  bare proxy       '; run "$floor" -q "$rate" -z 10s --latency-correction -c 64 | summary
    printf '  through relayer  '; run "$relayer" -q "$rate" -z 10s --latency-correction -c 64 | summary
done
echo "closed loop, 64 connections, 10 s (the most each serves):"
printf '  upstream alone   '; run "$upstream" -z 10s -c 64 | summary
printf '  bare proxy       '; run "$floor" -z 10s -c 64 | summary
printf '  through relayer  '; run "$relayer" -z 10s -c 64 | summary
printf 'status codes of a last 2,000 through the relayer: '
run "$relayer" -n 2000 -c 16 | python3 -c 'import json, sys; print(json.load(sys.stdin)["statusCodeDistribution"])'
grep -c '"level":"ERROR"\| ERROR ' "$work/relayer.err" | sed 's/^/relayer errors logged: /' || true
