# Shared by the top-level scripts. Source it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/alkasba-lake/target}"
BIN="$CARGO_TARGET_DIR/debug"
T0=$SECONDS
step() { printf '\n\033[1;32m==> %s\033[0m (%ss)\n' "$*" "$((SECONDS - T0))" >&2; }
fail() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed ($2)"; }
need cargo "install Rust 1.95 with rustup"
need python3 "install Python 3.11"
need curl "apt-get install curl"

# The release binaries every benchmark uses, always built as one package set: a different set
# unifies features differently and rebuilds every dependency (~40 min on 2 cores).
build_release() {
  step "building release binaries (planner, fetcher, webhook, realtime, dashboard, the runner, the CLI, alkasba-bench)"
  cargo build --release -p planner -p fetcher -p webhook -p realtime -p dashboard -p alkasba-runner -p alkasba-cli -p alkasba-bench --quiet
}

# Unpacks deployment package ZIP into DIR as Lambda does (DIR/bootstrap, executable).
unpack_package() {
  python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in z.infolist():  # zipfile drops permissions: restore the mode the zip records (as Lambda does)
    os.chmod(z.extract(i, sys.argv[2]), (i.external_attr >> 16) & 0o777)
PY
}

# LocalStack up and the benchmark stack STACK deployed; sets ENDPOINT (localstack/lib.sh).
bench_stack() {
  step "LocalStack and stack $1"
  localstack/install.sh
  localstack/status.sh >/dev/null 2>&1 || localstack/start.sh
  ALKASBA_SKIP_LINT=1 localstack/provision.sh "$1" >/dev/null
  source localstack/lib.sh
}
