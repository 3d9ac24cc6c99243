#!/usr/bin/env bash
# Starts LocalStack in host mode (no Docker) and waits until it is healthy. Idempotent: a healthy
# LocalStack on the port is reused. Safe to call from parallel tests (serialised by a lock).
source "$(dirname "$0")/lib.sh"

exec 9>"$LS_LOCK"
flock 9

if ls_healthy; then
  if pid="$(our_pid)"; then say "already running (pid $pid) at $ENDPOINT"; else say "reusing the healthy LocalStack at $ENDPOINT"; fi
  exit 0
fi
require_installed
if pid="$(our_pid)"; then
  die "LocalStack (pid $pid) is running but not healthy at $ENDPOINT; see $LS_LOG or run localstack/stop.sh"
fi
if port_in_use; then
  die "port $LOCALSTACK_PORT is in use by something that is not a healthy LocalStack; free it or set LOCALSTACK_PORT"
fi

say "starting LocalStack on $ENDPOINT (services: $LS_SERVICES), log: $LS_LOG"
mkdir -p "$ALKASBA_HOME/localstack-volume"
GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" \
LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" \
SQS_ENDPOINT_STRATEGY=path \
SERVICES="$LS_SERVICES" \
LOCALSTACK_VOLUME_DIR="$ALKASBA_HOME/localstack-volume" \
SKIP_SSL_CERT_DOWNLOAD=1 \
DISABLE_EVENTS=1 \
  setsid "$VENV/bin/python" -m localstack.runtime.main </dev/null >"$LS_LOG" 2>&1 9>&- &
pid=$!
echo "$pid" > "$LS_PID"

start=$SECONDS
until ls_healthy; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$LS_PID"
    tail -n 20 "$LS_LOG" >&2 || true
    die "LocalStack exited while starting (see $LS_LOG)"
  fi
  if (( SECONDS - start > LS_START_TIMEOUT )); then
    tail -n 20 "$LS_LOG" >&2 || true
    die "LocalStack did not become healthy within ${LS_START_TIMEOUT}s (pid $pid still running; see $LS_LOG)"
  fi
  sleep 1
done
say "healthy after $((SECONDS - start))s (pid $pid)"
