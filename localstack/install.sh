#!/usr/bin/env bash
# Installs LocalStack (host mode, pinned) and the test-only Python tools into a project-local
# virtualenv, and checkov into one of its own. Does nothing when both already match their lock
# files.
source "$(dirname "$0")/lib.sh"

LOCKS=("$REPO/localstack/requirements.lock" "$REPO/tests/requirements.lock")
want="$(cat "${LOCKS[@]}" | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.alkasba-stamp" 2>/dev/null)" == "$want" ]]; then
  say "python environment up to date ($VENV)"
else
  PY="${PYTHON:-python3}"
  command -v "$PY" >/dev/null || die "$PY not found: install Python 3.11"
  ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$ver" == "3.11" ]] || die "LocalStack 4.10 is pinned for Python 3.11, found $ver ($PY); set PYTHON=python3.11"

  say "creating $VENV and installing the pinned lock files (about a minute)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet --upgrade pip >/dev/null
  "$VENV/bin/pip" install --disable-pip-version-check --quiet $(printf -- '-r %q ' "${LOCKS[@]}")
  echo "$want" > "$VENV/.alkasba-stamp"
  say "installed: $("$VENV/bin/python" -m pip show localstack-core | grep -i '^version') (localstack-core)"
fi

# A test tool in a virtualenv of its own, from its lock file: NAME, LOCK, the binary to check.
tool_venv() {
  local name="$1" lock="$2" bin="$3" dir="$REPO/.local/$1"
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

# checkov and the SAM CLI each in their own virtualenv: their pins (boto3 among them) would
# fight LocalStack's and each other's.
tool_venv checkov "$REPO/tests/checkov.lock" checkov
tool_venv sam "$REPO/tests/sam.lock" sam
