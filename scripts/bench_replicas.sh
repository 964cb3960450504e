#!/usr/bin/env bash
# One relayer on SQLite against three replicas on one Postgres, under the same open-loop
# load in one run (docs/benchmarks.md, "Replicas"): latency through the same nginx front,
# settlement lag (credits charged but not yet burned, sampled every second from /v1/usage)
# and records per `settle` transaction. The chain, the SIMULATED providers and the SQLite
# relayer are `compux up`'s; the replicas share its market, key and relayer keypair (one of
# them leads settlement). The phases run one after the other, each drained before the next:
# two ledgers must never settle the same account at once. Not run by CI (minutes).
#
#   bash scripts/bench_replicas.sh [rate (1000)] [seconds (30)]   # needs nginx, oha, PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1000}"
seconds="${2:-30}"
. scripts/bench_tools.sh nginx
pg_admin="$(bash scripts/postgres.sh | tail -1)"
echo "building compux (perf profile)..." >&2
CARGO_TARGET_DIR="$target" cargo build --profile perf -q -p compux-cli
compux="$target/perf/compux"

work="$(mktemp -d)"
db="compux_bench_$$"
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    su postgres -c "dropdb --if-exists $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "starting compux up (chain, SIMULATED providers, the SQLite relayer)..." >&2
COMPUX_LOG=warn "$compux" up --rpc-port 0 --relayer-port 0 --json --data-dir "$work/up" \
    --config migrations/market.toml --settle-flush-secs 2 >"$work/up.json" 2>"$work/up.log" &
for _ in $(seq 1 240); do
    [ -s "$work/up.json" ] && break
    sleep 0.5
done
[ -s "$work/up.json" ] || { cat "$work/up.log" >&2; echo "compux up did not start" >&2; exit 1; }
read -r relayer key account < <(python3 -c 'import json,sys
s = json.load(open(sys.argv[1]))
print(s["relayer_url"], s["api_key"], s["credit_account"])' "$work/up.json")
# The cheapest SIMULATED provider (OpenAI protocol), which serves every request here.
sim_addr="$(python3 -c 'import re,sys; print(re.search(r"base_url = \"http://([^/\"]+)/v1\"", open(sys.argv[1]).read()).group(1))' "$work/up/relayer.toml")"
relayer="${relayer%/v1}"
sqlite_addr="${relayer#http://}"

# Three replicas: the demo relayer's configuration on one Postgres ledger, each with its
# own port and journal.
su postgres -c "createdb -O compux $db"
pg_url="${pg_admin%/*}/$db"
for i in 1 2 3; do
    python3 - "$work/up/relayer.toml" "$work/up/replica-$i.toml" "$i" "$pg_url" <<'EOF'
import re, sys
src, dst, i, pg = sys.argv[1:]
text = open(src).read()
text = re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:1810{i}"', text)
text = re.sub(r'ledger = "[^"]*"', f'ledger = "{pg}"', text)
text = re.sub(r'journal = "[^"]*"', f'journal = "replica-{i}-journal"', text)
open(dst, "w").write(text)
EOF
    COMPUX_LOG=warn,compux_relayer::jobs::settler=info "$compux" relayer --config "$work/up/replica-$i.toml" \
        >/dev/null 2>"$work/replica-$i.err" &
done
for i in 1 2 3; do
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:1810$i/health/ready" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:1810$i/health/ready" >/dev/null ||
        { cat "$work/replica-$i.err" >&2; echo "replica $i did not become ready" >&2; exit 1; }
done

# The same front for both: nginx on :18100 to the SQLite relayer, on :18200 round-robin to
# the three replicas, with kept-alive upstream connections.
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    upstream sqlite { server $sqlite_addr; keepalive 64; }
    upstream replicas { server 127.0.0.1:18101; server 127.0.0.1:18102; server 127.0.0.1:18103; keepalive 64; }
    server { listen 127.0.0.1:18100; location / { proxy_pass http://sqlite; proxy_http_version 1.1; proxy_set_header Connection ""; } }
    server { listen 127.0.0.1:18200; location / { proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection ""; } }
    upstream sim { server $sim_addr; keepalive 64; }
    server { listen 127.0.0.1:18300; location / { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"

body='{"model":"compux-sim-chat","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}'
# Credits charged and not yet burned on chain, as the ledger behind `base` reports them.
unburned() {
    curl -s "$1/v1/usage?group_by=none" -H "authorization: Bearer $key" |
        python3 -c 'import json,sys; r = json.load(sys.stdin)["data"]; print(sum(x["credits"] - x["settled_credits"] for x in r))'
}
settled_seq() { curl -s "$1/v1/settlement/batches?source=$account" | python3 -c 'import json,sys; print(max([b["seq"] for b in json.load(sys.stdin)["data"]] or [0]))'; }

phase() { # name, front URL, a relayer's URL (for the ledger's view)
    local name="$1" front="$2" ledger="$3"
    local first_seq
    first_seq="$(settled_seq "$ledger")"
    echo "$name: $rate req/s for $seconds s..." >&2
    ( for _ in $(seq 1 "$seconds"); do echo "$(unburned "$ledger")"; sleep 1; done ) >"$work/$name.lag" &
    local sampler=$!
    "$oha" -q "$rate" -z "${seconds}s" --latency-correction -c 64 --no-tui --output-format json -m POST \
        -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
        "$front/v1/chat/completions" >"$work/$name.oha"
    local stopped drained=""
    stopped=$(date +%s.%N)
    wait "$sampler"
    for _ in $(seq 1 240); do
        if [ "$(unburned "$ledger")" = "0" ]; then drained=$(date +%s.%N); break; fi
        sleep 0.5
    done
    curl -s "$ledger/v1/settlement/batches?source=$account" >"$work/$name.batches"
    python3 - "$work" "$name" "$first_seq" "$stopped" "${drained:-}" <<'PY'
import json, statistics, sys
work, name, first_seq, stopped, drained = sys.argv[1:]
r = json.load(open(f"{work}/{name}.oha"))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
batches = [b for b in json.load(open(f"{work}/{name}.batches"))["data"] if b["seq"] > int(first_seq) and b.get("signature")]
records = sum(b["records"] for b in batches)
lag = [int(l) for l in open(f"{work}/{name}.lag") if l.strip().isdigit()]
print(f"{name:28s} {s['requestsPerSec']:7.0f} req/s  p50 {p['p50']*1000:6.3f} ms  p99 {p['p99']*1000:7.3f} ms  "
      f"statuses {codes}  |  {records} records in {len(batches)} settles ({records / max(len(batches), 1):.0f}/tx)  "
      f"unburned median {statistics.median(lag) if lag else 0:,.0f} max {max(lag, default=0):,.0f} base units  "
      + (f"drained {float(drained) - float(stopped):.1f} s after" if drained else "NOT drained in 120 s"))
PY
}

echo "(through one nginx front; the same SIMULATED providers behind both)"
printf '%-28s ' "the provider alone"
"$oha" -q "$rate" -z "${seconds}s" --latency-correction -c 64 --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -d "$body" "http://127.0.0.1:18300/v1/chat/completions" |
    python3 -c 'import json,sys; r = json.load(sys.stdin); s, p = r["summary"], r["latencyPercentiles"]
print("%7.0f req/s  p50 %6.3f ms  p99 %7.3f ms" % (s["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000))'
phase "one relayer, SQLite" "http://127.0.0.1:18100" "$relayer"
phase "three replicas, Postgres" "http://127.0.0.1:18200" "http://127.0.0.1:18101"
printf 'leading the settlement: '
grep -l "now leads settlement" "$work"/replica-*.err | xargs -r -n1 basename | tr '\n' ' '; echo
grep -h '"level":"ERROR"\| ERROR ' "$work"/replica-*.err | head -5 || true
