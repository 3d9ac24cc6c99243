#!/usr/bin/env bash
# Benchmark: the batch layer on a store of ORDERS orders (default 1,000,000) on a local Delta lake:
# transform, full gold build against DuckDB running the same SQL, incremental update for one new
# day against a full rebuild, file counts and a typical gold query before and after maintenance.
#   scripts/bench-batch.sh [ORDERS] [-- extra alkasba-bench batch flags]
# Prints the figures and a Markdown row for docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-1000000}"
shift || true
[[ "${1:-}" == "--" ]] && shift

build_release
localstack/install.sh   # the DuckDB reference engine lives in the project's venv

step "benchmark: $ORDERS orders"
"$CARGO_TARGET_DIR/release/alkasba-bench" batch --orders "$ORDERS" "$@"
