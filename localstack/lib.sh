# Shared settings for the LocalStack scripts. Source it; do not run it.
# Every value can be overridden from the environment.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Everything this project installs or writes at run time (virtualenv, logs, pid files).
ALKASBA_HOME="${ALKASBA_HOME:-$REPO/.local}"
VENV="${ALKASBA_VENV:-$ALKASBA_HOME/venv}"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
ENDPOINT="http://127.0.0.1:${LOCALSTACK_PORT}"
LS_LOG="$ALKASBA_HOME/localstack.log"
LS_PID="$ALKASBA_HOME/localstack.pid"
LS_LOCK="$ALKASBA_HOME/localstack.lock"
LS_SERVICES="${LS_SERVICES:-s3,sqs,kms,sns,events,scheduler,cloudformation,sts,iam,logs,ssm,secretsmanager}"
LS_START_TIMEOUT="${LS_START_TIMEOUT:-120}"

# LocalStack accepts any credentials; these are not secrets. Real AWS never sees them.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"

say() { printf '\033[1;34m[localstack]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[localstack] error:\033[0m %s\n' "$*" >&2; exit 1; }

mkdir -p "$ALKASBA_HOME"

# A test tool in a virtualenv of its own, from its lock file: NAME, LOCK, the binary to check.
tool_venv() {
  local name="$1" lock="$2" bin="$3" dir="$ALKASBA_HOME/$1"
  local want
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [[ -x "$dir/bin/$bin" && "$(cat "$dir/.alkasba-stamp" 2>/dev/null)" == "$want" ]]; then
    say "$name up to date ($dir)"
    return
  fi
  say "creating $dir and installing $name (about a minute)"
  rm -rf "$dir"
  "${PYTHON:-python3}" -m venv "$dir"
  "$dir/bin/pip" install --disable-pip-version-check --quiet --upgrade pip >/dev/null
  "$dir/bin/pip" install --disable-pip-version-check --quiet -r "$lock"
  echo "$want" > "$dir/.alkasba-stamp"
  say "installed: $name from $lock"
}


# True when LocalStack answers on $ENDPOINT and every service we need is available.
ls_healthy() {
  local body
  body="$(curl -sf --max-time 3 "$ENDPOINT/_localstack/health" 2>/dev/null)" || return 1
  python3 - "$LS_SERVICES" "$body" <<'PY'
import json, sys
wanted = sys.argv[1].split(",")
services = json.loads(sys.argv[2]).get("services", {})
bad = [s for s in wanted if services.get(s) not in ("available", "running")]
sys.exit(1 if bad else 0)
PY
}

# True when something listens on the port (LocalStack or not). SO_REUSEADDR as servers set it,
# so connections lingering in TIME_WAIT after a stop do not count.
port_in_use() {
  python3 - "$LOCALSTACK_PORT" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

# The pid we started, if it is still alive.
our_pid() {
  [[ -f "$LS_PID" ]] || return 1
  local pid; pid="$(cat "$LS_PID")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# A CLI profile of our own: LocalStack endpoint for every service (`cloudformation package` ignores
# --endpoint-url for its upload) and path-style S3 (virtual hosts do not resolve offline).
AWS_LOCAL_CONFIG="$ALKASBA_HOME/aws-cli.config"
cat > "$AWS_LOCAL_CONFIG" <<CFG
[default]
region = $AWS_DEFAULT_REGION
endpoint_url = $ENDPOINT
s3 =
  addressing_style = path
CFG
awsl() { AWS_CONFIG_FILE="$AWS_LOCAL_CONFIG" "$VENV/bin/aws" "$@"; }

require_installed() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import localstack' 2>/dev/null \
    || die "LocalStack is not installed in $VENV: run localstack/install.sh first"
}

require_healthy() {
  ls_healthy || die "LocalStack is not healthy at $ENDPOINT: run localstack/start.sh (log: $LS_LOG)"
}
