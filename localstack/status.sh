#!/usr/bin/env bash
# Prints whether LocalStack is up, who started it, and each service's state. Exit 0 when healthy.
source "$(dirname "$0")/lib.sh"

if pid="$(our_pid)"; then owner="started by this project, pid $pid"; else owner="not started by this project"; fi
if body="$(curl -sf --max-time 3 "$ENDPOINT/_localstack/health")"; then
  echo "LocalStack at $ENDPOINT ($owner):"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("  version", d.get("version")); [print("  %-16s %s" % kv) for kv in sorted(d["services"].items()) if kv[1] != "disabled"]' "$body"
  ls_healthy && exit 0
  echo "  (some required services are not available: $LS_SERVICES)"; exit 1
else
  echo "LocalStack is not answering at $ENDPOINT ($owner)"; exit 1
fi
