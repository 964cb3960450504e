#!/usr/bin/env bash
# Settlement under load (docs/benchmarks.md, "Settlement"): `compux up` (the program as its
# SBF ELF when built, the relayer and its settler), an open-loop load of chat completions
# (oha) for a while, then: how many usage records each on-chain `settle` carried, what the
# settlement transactions cost in fees and compute units, and how far settlement lagged
# (the credits charged but not yet burned, sampled from /metrics every second, and how long
# they took to drain after the load stopped). Not run by CI (minutes, wants an idle machine).
#
#   bash scripts/bench_settlement.sh [rate (1000)] [seconds (30)]
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1000}"
seconds="${2:-30}"
. scripts/bench_tools.sh
echo "building compux (perf profile)..." >&2
CARGO_TARGET_DIR="$target" cargo build --profile perf -q -p compux-cli
compux="$target/perf/compux"

work="$(mktemp -d)"
trap 'jobs -p | xargs -r kill 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
COMPUX_LOG=warn "$compux" up --rpc-port 0 --relayer-port 0 --json --data-dir "$work/up" \
    --config migrations/market.toml --settle-flush-secs 2 >"$work/up.json" 2>"$work/up.log" &
for _ in $(seq 1 240); do
    [ -s "$work/up.json" ] && break
    sleep 0.5
done
[ -s "$work/up.json" ] || { cat "$work/up.log" >&2; echo "compux up did not start" >&2; exit 1; }
read -r rpc relayer key account program < <(python3 -c 'import json,sys
s = json.load(open(sys.argv[1]))
print(s["rpc_url"], s["relayer_url"], s["api_key"], s["credit_account"], s["program"].split()[0])' "$work/up.json")
base="${relayer%/v1}"
unsettled() { curl -s "$base/metrics" | awk '/^compux_unsettled_credits /{print $2}'; }

body='{"model":"compux-sim-chat","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}'
echo "load: $rate req/s for $seconds s through the relayer ($program program)" >&2
( for _ in $(seq 1 "$seconds"); do echo "$(date +%s.%N) $(unsettled)"; sleep 1; done ) >"$work/during" &
sampler=$!
"$oha" -q "$rate" -z "${seconds}s" --no-tui -m POST -H "authorization: Bearer $key" \
    -H 'content-type: application/json' -d "$body" "$relayer/chat/completions" >"$work/oha.txt"
stopped=$(date +%s.%N)
wait "$sampler"
drained=""
for _ in $(seq 1 120); do
    if [ "$(unsettled)" = "0" ]; then drained=$(date +%s.%N); break; fi
    sleep 0.5
done
curl -s "$base/v1/settlement/batches?source=$account" >"$work/batches.json"
python3 - "$work" "$rpc" "$rate" "$stopped" "${drained:-}" <<'PY'
import json, statistics, sys, urllib.request
work, rpc, rate, stopped, drained = sys.argv[1:]
rate = int(rate)
def call(method, params):
    req = urllib.request.Request(rpc, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
                                 {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))["result"]
oha = open(f"{work}/oha.txt").read()
ok = [l for l in oha.splitlines() if "[200]" in l]
print("load:", " ".join(ok[0].split()) if ok else oha.strip().splitlines()[-1])
batches = [b for b in json.load(open(f"{work}/batches.json"))["data"] if b.get("signature")]
records = sum(b["records"] for b in batches)
print(f"settled: {records} records in {len(batches)} settle transactions "
      f"({records / max(len(batches), 1):.0f} records per transaction; max {max((b['records'] for b in batches), default=0)})")
fees, units = [], []
for b in batches:
    tx = call("getTransaction", [b["signature"], {"encoding": "json", "maxSupportedTransactionVersion": 0}])
    fees.append(tx["meta"]["fee"])
    units.append(tx["meta"]["computeUnitsConsumed"])
if batches:
    fee = statistics.mean(fees)
    per_million = fee * 1_000_000 / max(records / len(batches), 1)
    print(f"per settle transaction: fee {fee:.0f} lamports, {statistics.mean(units):.0f} compute units "
          f"(min {min(units)}, max {max(units)})")
    print(f"fees per 1M requests at this batch size: {per_million:,.0f} lamports ({per_million / 1e9:.4f} SOL)")
during = [float(l.split()[1]) for l in open(f"{work}/during") if len(l.split()) == 2]
if during:
    print(f"unsettled credits during the load: median {statistics.median(during):,.0f}, max {max(during):,.0f} base units")
if drained:
    print(f"drained {float(drained) - float(stopped):.1f} s after the load stopped")
else:
    print("not drained within 60 s after the load stopped")
PY
