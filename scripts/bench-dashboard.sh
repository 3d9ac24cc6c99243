#!/usr/bin/env bash
# Benchmark: the dashboard on gold built from a store of ORDERS orders (default 1,000,000): time to
# the first complete sales page and to apply a filter, measured in headless Chromium with the
# Performance API against the release `dashboard` binary under the runner, reading the local lake
# `alkasba-bench batch` builds; beside them DuckDB running the same queries (the catalogue's own
# SQL and parameters) over the same files.
#   scripts/bench-dashboard.sh [ORDERS]
# Prints the figures and a Markdown row for docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-1000000}"
STACK=alkasba-bench-dash
PORT="${ALKASBA_BENCH_DASH_PORT:-8795}"
LAKE="$REPO/.local/bench/batch-lake"
REL="$CARGO_TARGET_DIR/release"

build_release
scripts/install-web.sh
bench_stack "$STACK"
export AWS_ENDPOINT_URL="$ENDPOINT"

if [[ "$(cat "$LAKE/.dashboard-bench-orders" 2>/dev/null)" != "$ORDERS" ]]; then
  step "building gold from a $ORDERS-order store (alkasba-bench batch, reusing its load snapshot when it has one)"
  "$REL/alkasba-bench" batch --orders "$ORDERS" --inc-days 1 --reuse-load --dir "$LAKE" > "$ALKASBA_HOME/bench-dashboard-batch.log"
  echo "$ORDERS" > "$LAKE/.dashboard-bench-orders"
fi

step "publishing the pages into the lake and starting the release dashboard on 127.0.0.1:$PORT"
LAKE_ROOT="file://$LAKE" "$REL/alkasba" dashboard publish --web web
"$REL/alkasba-runner" run --stack "$STACK" --bin-dir "$REL" --function dashboard --http-port "$PORT" --concurrency 2 \
  --env "LAKE_ROOT=file://$LAKE" --quiet > "$ALKASBA_HOME/bench-dashboard-runner.txt" 2>&1 &
RUNNER=$!
trap 'kill -INT $RUNNER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null && break; kill -0 $RUNNER || { cat "$ALKASBA_HOME/bench-dashboard-runner.txt" >&2; fail "the runner exited"; }; sleep 0.1; done
LINK="$("$REL/alkasba" --stack "$STACK" dashboard grant --user bench --url "http://127.0.0.1:$PORT" 2>/dev/null)"

step "Chromium: first complete view and filters (5 runs each)"
browser="$(node tests/browser/bench-dashboard.mjs "$LINK" 5)"
echo "$browser"
read -r FROM TO CUR CAT < <(python3 -c 'import json,sys; b=json.loads(sys.argv[1]); print(b["state"]["from"], b["state"]["to"], b["currencies"][0], b["category"].replace(" ", "_"))' "$browser")
CAT="${CAT//_/ }"

step "DuckDB: the same queries over the same files"
first="range,currencies,categories,sales_kpis,sales_series,category_sales"
page="sales_kpis,sales_series,category_sales"
duck="$("$REL/alkasba" dashboard queries | "$VENV/bin/python" tools/duckdb/bench_dashboard.py "$LAKE" \
  "first_view=$first;from=$FROM;to=$TO" "filter_currency=$page;from=$FROM;to=$TO;currency=$CUR" "filter_category=$page,category_kpis;from=$FROM;to=$TO;category=$CAT")"
echo "$duck"

python3 - "$browser" "$duck" "$ORDERS" <<'PY'
import json, sys, datetime, os
b, d, orders = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
duck_filter = (d["filter_currency"]["ms"] + d["filter_category"]["ms"]) / 2
print(f"\nfirst complete view: {b['first_view_ms']:.0f} ms (median of {len(b['first_views_ms'])}; first ever, cold function: {b['cold_first_view_ms']:.0f} ms); DuckDB, same queries: {d['first_view']['ms']:.0f} ms")
print(f"filter: {b['filter_ms']:.0f} ms (median of {len(b['filters_ms'])}); DuckDB, same queries: {duck_filter:.0f} ms")
print("\nrow for docs/benchmarks.md:")
print(f"| {datetime.date.today()} | {orders:,} | {b['first_view_ms']:.0f} ms (cold {b['cold_first_view_ms']:.0f} ms) | {d['first_view']['ms']:.0f} ms | {b['filter_ms']:.0f} ms | {duck_filter:.0f} ms |")
PY
