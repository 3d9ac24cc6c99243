#!/usr/bin/env bash
# Stops the LocalStack this project started (by its pid file), and nothing else.
source "$(dirname "$0")/lib.sh"

exec 9>"$LS_LOCK"
flock 9

if ! pid="$(our_pid)"; then
  rm -f "$LS_PID"
  if ls_healthy; then
    say "the LocalStack at $ENDPOINT was not started by this project; leaving it running"
  else
    say "not running"
  fi
  exit 0
fi
say "stopping LocalStack (process group $pid)"
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 30); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
  say "still running after 15s; killing"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$LS_PID"
say "stopped"
