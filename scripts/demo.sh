#!/usr/bin/env bash
# Set-up command 1: installs what is needed, builds, and runs the platform end to end on the local
# default (LocalStack + the Alkasba Store simulator), ending with a summary of what happened.
source "$(dirname "$0")/lib.sh"
source "$REPO/localstack/lib.sh"   # endpoint, credentials for LocalStack, awsl
STACK="${ALKASBA_STACK:-alkasba-lake}"
SIM_PORT="${ALKASBA_SIM_PORT:-8787}"
SIM_ORDERS="${ALKASBA_SIM_ORDERS:-20000}"
TICKS="${ALKASBA_DEMO_TICKS:-3}"
LOGS="$ALKASBA_HOME/logs/demo"
mkdir -p "$LOGS"

step "1/6 installing LocalStack and the test tools (pinned, into $VENV)"
localstack/install.sh

step "2/6 building the functions, the runner and the simulator (first build: ~10 min on 2 cores)"
cargo build --bins --quiet

step "3/6 starting LocalStack"
localstack/start.sh

step "4/6 deploying infra/template.yaml as stack $STACK"
localstack/provision.sh "$STACK" > "$LOGS/outputs.tsv"
out() { awk -F'\t' -v k="$1" '$1 == k {print $2}' "$LOGS/outputs.tsv"; }
secret() { awsl secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

step "5/6 starting the Alkasba Store simulator on 127.0.0.1:$SIM_PORT with the provisioned credentials"
# Secrets go from Secrets Manager into shell variables (not exported) and from there only into
# the environment of the processes that need them: never to disk, argv or other children.
ck="$(secret "$STACK/store/credentials" consumer_key)"
cs="$(secret "$STACK/store/credentials" consumer_secret)"
ALKASBA_SIM_CONSUMER_KEY="$ck" ALKASBA_SIM_CONSUMER_SECRET="$cs" \
ALKASBA_SIM_FEED_API_KEY="$(secret "$STACK/feeds/competitor-prices" api_key)" \
ALKASBA_SIM_FX_TOKEN="$(secret "$STACK/feeds/exchange-rates" token)" \
ALKASBA_SIM_WEBHOOK_SECRET="$(secret "$STACK/store/webhook-secret" secret)" \
  "$BIN/alkasba-sim" --listen "127.0.0.1:$SIM_PORT" --orders "$SIM_ORDERS" > "$LOGS/simulator.log" 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
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

step "6/6 running the functions through the local runner: $TICKS heartbeat ticks (schedule sped up 300x)"
RUST_LOG=warn "$BIN/alkasba-runner" run --stack "$STACK" --function heartbeat --speedup 300 --fire-on-start \
  --max-invocations "$TICKS" --duration 120s --log-dir "$LOGS" --quiet | tee "$LOGS/runner.txt"
grep -q "ok *$TICKS\$" "$LOGS/runner.txt" || fail "not every heartbeat succeeded (see $LOGS/HeartbeatFunction.log)"

TABLE="$(out HeartbeatTableUri)"
read_back="$(AWS_ENDPOINT_URL="$ENDPOINT" "$VENV/bin/python" tools/duckdb/lake_sql.py \
  "SELECT count(*) AS rows, count(DISTINCT tick_time) AS ticks, max(tick_time) AS latest FROM delta_scan('$TABLE')")"

cat <<SUMMARY

================================================================ Alkasba Lake: local demo
 took              $((SECONDS - T0)) s
 LocalStack        $ENDPOINT (log: $LS_LOG; stop with localstack/stop.sh)
 stack             $STACK: bucket $(out LakeBucketName)
                   fetch queue $(out FetchTasksQueueUrl)
                   alerts topic $(out AlertsTopicArn)
 store simulator   http://127.0.0.1:$SIM_PORT, seed 42: $store_total orders behind HTTP Basic auth
                   with the credentials generated in Secrets Manager
 heartbeat         $TICKS scheduled ticks: runner -> real heartbeat Lambda binary -> Delta commits on S3
 Delta table       $TABLE
 DuckDB read-back  $read_back
                   (each tick is committed exactly once: a repeated or older tick is skipped)
 logs              $LOGS
================================================================
SUMMARY
