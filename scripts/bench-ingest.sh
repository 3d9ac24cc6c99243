#!/usr/bin/env bash
# Benchmark: ingestion end to end (simulator → planner → SQS → fetchers → bronze Delta on
# LocalStack S3), its in-memory floor, KMS requests per 1,000 records, fetcher peak RSS and cold
# start; in the same run, the anchors: a bare sequential client (the source's ceiling), our
# bytes in S3 per order, and dlt reading the same store into Delta on the same bucket
# (tools/dlt, pinned, installed into .local/dlt). Release build; LocalStack started if needed; a
# dedicated stack. The planner and fetchers run as deployed: their deployment packages
# (scripts/package.sh, thin LTO) unpacked into .local/bench/functions; ALKASBA_BENCH_FUNCTIONS=release
# runs the plain release build instead (quicker to rebuild after a change; at 1M on 2026-12-06
# both ran at the same rate, docs/benchmarks.md).
#   scripts/bench-ingest.sh [ORDERS] [-- extra alkasba-bench ingest flags]
# Prints the figures and a Markdown row for docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-100000}"
shift || true
[[ "${1:-}" == "--" ]] && shift
STACK="${ALKASBA_BENCH_STACK:-alkasba-bench}"

build_release
FUNCTIONS_DIR="$CARGO_TARGET_DIR/release"
if [[ "${ALKASBA_BENCH_FUNCTIONS:-package}" != release ]]; then
  step "the deployment packages of the planner and the fetcher (x86_64, as scripts/package.sh builds them)"
  scripts/package.sh --arch x86_64 --out "$REPO/.local/bench/package" planner fetcher >/dev/null
  FUNCTIONS_DIR="$REPO/.local/bench/functions"
  rm -rf "$FUNCTIONS_DIR"
  for f in planner fetcher; do unpack_package "$REPO/.local/bench/package/x86_64/$f/bootstrap.zip" "$FUNCTIONS_DIR/$f"; done
fi

bench_stack "$STACK"
step "the dlt anchor (tools/dlt/requirements.lock)"
tool_venv dlt "$REPO/tools/dlt/requirements.lock" python

step "benchmark: $ORDERS orders"
"$CARGO_TARGET_DIR/release/alkasba-bench" ingest --stack "$STACK" --orders "$ORDERS" --endpoint "$ENDPOINT" --functions-dir "$FUNCTIONS_DIR" "$@"
