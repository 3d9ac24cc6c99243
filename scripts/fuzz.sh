#!/usr/bin/env bash
# Fuzzing (issue 18): every property test named fuzz_* (source files, pagination headers,
# Retry-After, records through validation and sealing, webhook bodies and headers) with
# CASES inputs each (default 1,000,000; CI runs them with proptest's 256 as part of the suite).
# Prints each target's time; docs/fuzzing.md has the last long run's figures.
#
#   scripts/fuzz.sh            # a million inputs per target (about 40 min on 2 cores)
#   scripts/fuzz.sh 20000      # a quick run
source "$(dirname "$0")/lib.sh"
cases="${1:-1000000}"
[[ "$cases" =~ ^[0-9]+$ ]] || fail "CASES must be a number, not $cases"
step "building the fuzz targets"
cargo build --tests -p alkasba-sources -p alkasba-records -p alkasba-realtime -p alkasba-ingest
step "running every fuzz_* property with $cases inputs each"
PROPTEST_CASES="$cases" cargo nextest run -p alkasba-sources -p alkasba-records -p alkasba-realtime -p alkasba-ingest \
  -E 'test(/^fuzz_/)' --no-fail-fast --status-level all --final-status-level all
