#!/usr/bin/env bash
# Benchmark: ingestion end to end (simulator → planner → SQS → fetchers → bronze Delta on
# LocalStack S3), its in-memory floor, KMS requests per 1,000 records, fetcher peak RSS and cold
# start. Release build; LocalStack started if needed; a dedicated stack.
#   scripts/bench-ingest.sh [ORDERS] [-- extra alkasba-bench ingest flags]
# Prints the figures and a Markdown row for docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-100000}"
shift || true
[[ "${1:-}" == "--" ]] && shift
STACK="${ALKASBA_BENCH_STACK:-alkasba-bench}"

build_release

bench_stack "$STACK"

step "benchmark: $ORDERS orders"
"$CARGO_TARGET_DIR/release/alkasba-bench" ingest --stack "$STACK" --orders "$ORDERS" --endpoint "$ENDPOINT" "$@"
