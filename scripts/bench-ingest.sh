#!/usr/bin/env bash
# Benchmark: ingestion end to end (simulator → planner → SQS → fetchers → bronze Delta on
# LocalStack S3), its in-memory floor, KMS requests per 1,000 records, fetcher peak RSS and cold
# start; in the same run, the anchors: a bare sequential client (the source's ceiling), our
# bytes in S3 per order, and dlt reading the same store into Delta on the same bucket
# (tools/dlt, pinned, installed into .local/dlt). Release build; LocalStack started if needed; a
# dedicated stack.
#   scripts/bench-ingest.sh [ORDERS] [-- extra alkasba-bench ingest flags]
# Prints the figures and a Markdown row for docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-100000}"
shift || true
[[ "${1:-}" == "--" ]] && shift
STACK="${ALKASBA_BENCH_STACK:-alkasba-bench}"

build_release

bench_stack "$STACK"
step "the dlt anchor (tools/dlt/requirements.lock)"
tool_venv dlt "$REPO/tools/dlt/requirements.lock" python

step "benchmark: $ORDERS orders"
"$CARGO_TARGET_DIR/release/alkasba-bench" ingest --stack "$STACK" --orders "$ORDERS" --endpoint "$ENDPOINT" "$@"
