#!/usr/bin/env bash
# Set-up command 1: installs what is needed, builds, and runs the platform end to end on the local
# default (LocalStack + the Alkasba Store simulator), ending with a summary of what happened.
source "$(dirname "$0")/lib.sh"
source "$REPO/localstack/lib.sh"   # endpoint, credentials for LocalStack, awsl
STACK="${ALKASBA_STACK:-alkasba-lake}"
SIM_PORT="${ALKASBA_SIM_PORT:-8787}"
SIM_ORDERS="${ALKASBA_SIM_ORDERS:-20000}"
# Like a real store: 1% of records invalid (they go to quarantine), 5% of requests failing with
# a 5xx and 1% throttled (the fetchers retry them).
SIM_INVALID="${ALKASBA_SIM_INVALID_RATE:-0.01}"
SIM_FAULTS="${ALKASBA_SIM_FAULTS:-{\"error_rate\":0.05,\"throttle_rate\":0.01\}}"
LOGS="$ALKASBA_HOME/logs/demo"
DASH_PORT="${ALKASBA_DASHBOARD_PORT:-8790}"
# What the demo leaves running (the simulator sending live events, the dashboard, webhook and
# realtime functions under the runner): `scripts/demo.sh --stop` ends them.
PIDS="$ALKASBA_HOME/demo.pids"
stop_previous() {
  if [[ -f "$PIDS" ]]; then
    kill $(cat "$PIDS") 2>/dev/null || true
    rm -f "$PIDS"
  fi
}
if [[ "${1:-}" == "--stop" ]]; then stop_previous; echo "demo processes stopped" >&2; exit 0; fi
stop_previous
mkdir -p "$LOGS"
KEEP=0

step "1/8 installing LocalStack and the test tools (pinned, into $VENV)"
localstack/install.sh

step "2/8 building the functions, the runner and the simulator (first build: ~10 min on 2 cores)"
cargo build --bins --quiet

step "3/8 starting LocalStack"
localstack/start.sh

step "4/8 deploying infra/template.yaml as stack $STACK"
ALKASBA_STACK_PARAMETERS="StoreBaseUrl=http://127.0.0.1:$SIM_PORT" localstack/provision.sh "$STACK" > "$LOGS/outputs.tsv"
out() { awk -F'\t' -v k="$1" '$1 == k {print $2}' "$LOGS/outputs.tsv"; }
secret() { awsl secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

step "5/8 starting the Alkasba Store simulator on 127.0.0.1:$SIM_PORT with the provisioned credentials ($SIM_INVALID invalid records, faults $SIM_FAULTS)"
# Secrets go from Secrets Manager into shell variables (not exported) and from there only into
# the environment of the processes that need them: never to disk, argv or other children.
ck="$(secret "$STACK/store/credentials" consumer_key)"
cs="$(secret "$STACK/store/credentials" consumer_secret)"
ALKASBA_SIM_CONSUMER_KEY="$ck" ALKASBA_SIM_CONSUMER_SECRET="$cs" \
ALKASBA_SIM_FEED_API_KEY="$(secret "$STACK/feeds/competitor-prices" api_key)" \
ALKASBA_SIM_FX_TOKEN="$(secret "$STACK/feeds/exchange-rates" token)" \
ALKASBA_SIM_WEBHOOK_SECRET="$(secret "$STACK/store/webhook-secret" secret)" \
  setsid "$BIN/alkasba-sim" --listen "127.0.0.1:$SIM_PORT" --orders "$SIM_ORDERS" \
    --invalid-rate "$SIM_INVALID" --faults "$SIM_FAULTS" > "$LOGS/simulator.log" 2>&1 &
SIM_PID=$!
trap '[[ $KEEP == 1 ]] || kill $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$SIM_PORT/_sim/health" >/dev/null && break; kill -0 $SIM_PID 2>/dev/null || { cat "$LOGS/simulator.log" >&2; fail "the simulator exited (port $SIM_PORT in use? set ALKASBA_SIM_PORT)"; }; sleep 0.1; done
store_total="$(STORE_KEY="$ck" STORE_SECRET="$cs" python3 - "$SIM_PORT" <<'PY'
import base64, os, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/wp-json/wc/v3/orders?per_page=1")
cred = f"{os.environ['STORE_KEY']}:{os.environ['STORE_SECRET']}"
req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
with urllib.request.urlopen(req) as r:
    print(r.headers["X-WP-Total"])
PY
)"

step "6/8 ingesting: runner -> planner (schedule fired at start) -> SQS -> 4 fetchers -> bronze Delta on S3"
# The runner plays the schedule and the SQS mapping and runs the real binaries; `alkasba ingest
# status --wait` returns when every stream's run is recorded as complete in the ledger.
rm -f "$LOGS"/*.log
"$BIN/alkasba-runner" run --stack "$STACK" --function planner --function fetcher --function heartbeat \
  --concurrency 4 --fire-on-start --log-dir "$LOGS" --quiet > "$LOGS/runner.txt" 2>&1 &
RUNNER_PID=$!
trap 'kill -INT $RUNNER_PID 2>/dev/null || true; [[ $KEEP == 1 ]] || kill $SIM_PID 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="$ENDPOINT"
# The schedule fires the planner once at start; wait for that invocation to end (the runner
# reports it), so every stream's run is open before waiting on them.
for _ in $(seq 1 240); do
  grep -q 'PlannerFunction.*invocation failed\|invocation failed.*PlannerFunction' "$LOGS/runner.txt" && { cat "$LOGS/PlannerFunction.log" >&2; fail "the planner failed"; }
  grep -q 'invoked.*PlannerFunction\|PlannerFunction.*invoked' "$LOGS/runner.txt" && break
  kill -0 $RUNNER_PID 2>/dev/null || { cat "$LOGS/runner.txt" >&2; fail "the runner exited"; }
  sleep 0.5
done
"$BIN/alkasba" ingest status --stack "$STACK" --wait 15m | tee "$LOGS/status.txt" \
  || fail "ingestion did not complete (logs: $LOGS/FetcherFunction.log)"
kill -INT $RUNNER_PID; wait $RUNNER_PID || true

step "7/8 batch: transform (bronze -> silver), aggregate (silver -> gold marts) and forecast (28 days ahead, backtested), the real binaries through the runner"
for fn in transform aggregate forecast; do
  echo '{}' | "$BIN/alkasba-runner" invoke --stack "$STACK" "$fn" --log-dir "$LOGS" > "$LOGS/$fn.json" 2> "$LOGS/$fn.err" \
    || { cat "$LOGS/$fn.err" "$LOGS/$fn.json" >&2; fail "the $fn function failed (logs: $LOGS)"; }
done

step "8/8 dashboard: pages published to the lake; the dashboard, webhook and realtime functions left running; the store sending live events"
scripts/install-web.sh
"$BIN/alkasba" --stack "$STACK" dashboard publish --web web
setsid "$BIN/alkasba-runner" run --stack "$STACK" --function dashboard --function webhook --function realtime \
  --concurrency 2 --http-port "$DASH_PORT" --log-dir "$LOGS/live" > "$LOGS/live-runner.txt" 2>&1 &
LIVE_PID=$!
echo "$SIM_PID $LIVE_PID" > "$PIDS"
endpoint() { sed -n "s|^$1: \(http://[0-9.:]*\)/\$|\1|p" "$LOGS/live-runner.txt" | head -1; }
for _ in $(seq 1 200); do [[ -n "$(endpoint DashboardFunction)" ]] && break; kill -0 $LIVE_PID 2>/dev/null || { cat "$LOGS/live-runner.txt" >&2; fail "the dashboard runner exited (port $DASH_PORT in use? set ALKASBA_DASHBOARD_PORT)"; }; sleep 0.1; done
DASH="$(endpoint DashboardFunction)"
[[ -n "$DASH" ]] || fail "the dashboard did not start (log: $LOGS/live-runner.txt)"
LINK="$("$BIN/alkasba" --stack "$STACK" dashboard grant --user manager --url "$DASH" 2>/dev/null)"
curl -sf -X POST "http://127.0.0.1:$SIM_PORT/_sim/webhooks/start" -H 'content-type: application/json' \
  -d "{\"url\": \"$(endpoint WebhookFunction)/\", \"rate\": 2, \"duration_secs\": 3600, \"incidents\": []}" >/dev/null \
  || fail "the simulator refused to send webhooks (log: $LOGS/simulator.log)"
KEEP=1

ROOT="$(out LakeRoot)"
sql() { "$VENV/bin/python" tools/duckdb/lake_sql.py "$1"; }
# A table that was never written (no invalid record yet: no quarantine table) counts 0.
count() {
  if ! awsl s3 ls "$ROOT/$1/_delta_log/" >/dev/null 2>&1; then echo 0; return; fi
  sql "SELECT count(*) AS n FROM delta_scan('$ROOT/$1')" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['n'])"
}
orders="$(count bronze/alkasba_store/orders)"
customers="$(count bronze/alkasba_store/customers)"
products="$(count bronze/alkasba_store/products)"
refunds="$(count bronze/alkasba_store/refunds)"
prices="$(count bronze/competitor_prices/prices)"
rates="$(count bronze/exchange_rates/rates)"
quarantined="$(count quarantine/ingest)"
keys="$(count security/keyring)"
retried="$(sql "SELECT sum(pages_retried) AS n FROM delta_scan('$ROOT/ops/ingestion_runs')" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['n'])")"
gold_days="$(sql "SELECT count(DISTINCT date) AS n FROM delta_scan('$ROOT/gold/daily_sales')" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['n'])")"
gold_revenue="$(sql "SELECT CAST(sum(gross_mad) AS VARCHAR) AS n FROM delta_scan('$ROOT/gold/daily_sales')" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['n'])")"
top="$(sql "SELECT product_name || ' (' || CAST(revenue_mad AS VARCHAR) || ' MAD)' AS n FROM delta_scan('$ROOT/gold/top_products') ORDER BY month DESC, rank LIMIT 1" | python3 -c "import json,sys; r=json.load(sys.stdin); print(r[0]['n'] if r else '-')")"
forecast="$(python3 - "$LOGS/forecast.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["result"]
t = next((a for a in r["accuracy"] if a["series"] == "revenue_mad/total"), None)
gain = f'{100 * (1 - t["mase"] / t["naive_mase"]):.0f}% better than same-weekday-last-week' if t and t["mase"] is not None and t["naive_mase"] else "not backtested"
print(f'{r["series"]} series after {r["as_of"]} ({r["products"]} products); total revenue by {t["model"] if t else "-"}, {gain};\n'
      f'                   {r["stockouts_within_horizon"]} products run out of stock within 28 days')
PY
)"
silver_orders="$(count silver/orders)"
silver_lines="$(count silver/order_lines)"
sample="$(sql "SELECT email_token, substr(_sealed, 1, 40) AS pii_sealed FROM delta_scan('$ROOT/bronze/alkasba_store/customers') LIMIT 1")"

cat <<SUMMARY

================================================================ Alkasba Lake: local demo
 took              $((SECONDS - T0)) s
 LocalStack        $ENDPOINT (log: $LS_LOG; stop with localstack/stop.sh)
 stack             $STACK: bucket $(out LakeBucketName)
 store simulator   http://127.0.0.1:$SIM_PORT, seed 42: $store_total orders behind HTTP Basic auth
                   with the credentials generated in Secrets Manager; faults $SIM_FAULTS
 ingestion         $(grep -c '"task done"' "$LOGS/FetcherFunction.log") fetch tasks, $retried pages retried after 5xx/429; runs per stream:
$(sed 's/^/                   /' "$LOGS/status.txt")
 bronze (DuckDB)   orders $orders, customers $customers, products $products, refunds $refunds,
                   competitor prices $prices, exchange rates $rates
 quarantine        $quarantined invalid records with their reasons (quarantine/ingest)
 personal data     sealed per person ($keys keys in security/keyring); tokens for joins, e.g.
                   $sample
                   decrypt (needs kms:Decrypt): $BIN/alkasba pii decrypt --stack $STACK --table $ROOT/bronze/alkasba_store/customers --limit 1
 silver (DuckDB)   orders $silver_orders (latest version each), order lines $silver_lines
 gold (DuckDB)     $gold_days days of sales, $gold_revenue MAD gross revenue; top product this month: $top
                   thirteen marts under $ROOT/gold/ (query them: docs/athena-trino.md)
 forecast          $forecast
 dashboard         $LINK
                   (open it in a browser; the live page moves with the store's webhooks, 2 events/s
                   for an hour; stop everything with scripts/demo.sh --stop)
 logs              $LOGS
================================================================
SUMMARY
