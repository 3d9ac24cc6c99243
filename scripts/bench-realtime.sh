#!/usr/bin/env bash
# Benchmark: the real-time path. The simulator's signed webhooks at RATE deliveries/s for SECS
# seconds through the release webhook and realtime binaries under the runner (SQS, S3, SNS on
# LocalStack, all on this machine): accepted rate, events lost between webhook and the events
# table, alert latency (accepted trigger → SNS) p50/p99, peak RSS. A dedicated stack.
#   scripts/bench-realtime.sh [RATE] [SECS] [-- extra alkasba-bench realtime flags]
# Prints the figures and a Markdown row for docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
RATE="${1:-1000}"
SECS="${2:-60}"
shift 2 || shift $# || true
[[ "${1:-}" == "--" ]] && shift
STACK="${ALKASBA_BENCH_STACK:-alkasba-bench}"

build_release

bench_stack "$STACK"

step "benchmark: $RATE deliveries/s for $SECS s"
RUST_LOG="${RUST_LOG:-warn}" "$CARGO_TARGET_DIR/release/alkasba-bench" realtime --stack "$STACK" --rate "$RATE" --secs "$SECS" --endpoint "$ENDPOINT" "$@"
