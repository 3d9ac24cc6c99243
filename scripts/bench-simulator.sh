#!/usr/bin/env bash
# Benchmark: simulator generation time and memory at 1,000,000 orders, and how fast it serves
# order pages (so later ingestion benchmarks know the source is not their bottleneck).
#   scripts/bench-simulator.sh [ORDERS] [CLIENT_THREADS]
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-1000000}"
THREADS="${2:-4}"
PORT="${ALKASBA_BENCH_PORT:-8797}"
cargo build --release -p alkasba-sim --quiet
for v in CONSUMER_KEY CONSUMER_SECRET FEED_API_KEY FX_TOKEN WEBHOOK_SECRET; do
  export "ALKASBA_SIM_$v=$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
done
LOG="$(mktemp)"
"$CARGO_TARGET_DIR/release/alkasba-sim" --listen "127.0.0.1:$PORT" --orders "$ORDERS" --customers $((ORDERS / 5)) >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/_sim/health" >/dev/null && break; sleep 0.1; done
gen_ms="$(grep -o 'generated_ms[^ ]*' "$LOG" | grep -o '[0-9]*$')"
rss_mb="$(( $(awk '/VmRSS/ {print $2}' /proc/$PID/status) / 1024 ))"
python3 - "$PORT" "$THREADS" "$ORDERS" "$gen_ms" "$rss_mb" <<'PY'
import base64, http.client, json, os, sys, threading, time
port, threads, orders, gen_ms, rss = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
auth = "Basic " + base64.b64encode(f"{os.environ['ALKASBA_SIM_CONSUMER_KEY']}:{os.environ['ALKASBA_SIM_CONSUMER_SECRET']}".encode()).decode()
pages = orders // 100
per_thread = 400
counts = [0] * threads
def work(t):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(per_thread):
        page = 1 + ((t * per_thread + i) * 7919) % pages   # spread over the whole store
        c.request("GET", f"/wp-json/wc/v3/orders?per_page=100&page={page}&orderby=modified&order=asc", headers={"Authorization": auth})
        r = c.getresponse(); body = r.read()
        assert r.status == 200, r.status
        counts[t] += len(json.loads(body))
start = time.time()
ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
secs = time.time() - start
n = sum(counts)
print(f"orders={orders} generation_ms={gen_ms} rss_after_generation_mb={rss}")
print(f"served {threads * per_thread} pages of 100 orders ({n} records) in {secs:.2f}s with {threads} client threads: "
      f"{threads * per_thread / secs:.0f} pages/s, {n / secs:.0f} records/s")
PY
