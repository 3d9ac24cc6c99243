#!/usr/bin/env bash
# Benchmark: our forecasting against statsforecast (AutoETS and SeasonalNaive) on every series of
# a store of ORDERS orders (default 1,000,000 over a year, 2,000 products): the same rolling-origin
# backtest (8 weekly cuts, 28 days each) and final 28-day forecast with intervals on both sides,
# scored the same way; wall time of the whole set, our peak RSS against the function's 2048 MiB.
#   scripts/bench-forecast.sh [ORDERS]
# statsforecast is installed (pinned) into its own virtualenv for this benchmark only. It runs the
# shop and category series (its AutoETS on the thousands of product series takes over 15 minutes
# here); ALKASBA_BENCH_ALL=1 runs it on every series.
source "$(dirname "$0")/lib.sh"
ORDERS="${1:-1000000}"
ALKASBA_HOME="${ALKASBA_HOME:-$REPO/.local}"
DIR="$ALKASBA_HOME/bench/forecast"
SFVENV="$ALKASBA_HOME/statsforecast-venv"
LOCK="$REPO/tools/bench-forecast/statsforecast/requirements.lock"
REL="$CARGO_TARGET_DIR/release"

step "building the release benchmark binary (the models and the simulator only)"
cargo build --release -p alkasba-bench-forecast --quiet

if [[ "$(cat "$SFVENV/.lock" 2>/dev/null)" != "$(sha256sum < "$LOCK")" ]]; then
  step "installing statsforecast (pinned) into $SFVENV"
  rm -rf "$SFVENV"
  python3 -m venv "$SFVENV"
  "$SFVENV/bin/pip" install --quiet --no-deps -r "$LOCK"
  sha256sum < "$LOCK" > "$SFVENV/.lock"
fi

step "generating the series of a $ORDERS-order store"
"$REL/alkasba-bench-forecast" series --orders "$ORDERS" --dir "$DIR"

step "ours: backtest, choice and forecast of every series"
"$REL/alkasba-bench-forecast" run --series "$DIR/series.csv" --dir "$DIR"

step "statsforecast: the same backtest and forecast"
"$SFVENV/bin/python" tools/bench-forecast/statsforecast/bench.py "$DIR/series.csv" "$DIR/ours.json" $([[ "${ALKASBA_BENCH_ALL:-0}" == 1 ]] || echo --aggregates)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%F)"
