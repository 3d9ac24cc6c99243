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

# checkov in its own virtualenv: its pins (boto3 among them) would fight LocalStack's.
CHECKOV_VENV="$REPO/.local/checkov"
CHECKOV_LOCK="$REPO/tests/checkov.lock"
want="$(sha256sum "$CHECKOV_LOCK" | cut -d' ' -f1)"
if [[ -x "$CHECKOV_VENV/bin/checkov" && "$(cat "$CHECKOV_VENV/.alkasba-stamp" 2>/dev/null)" == "$want" ]]; then
  say "checkov up to date ($CHECKOV_VENV)"
else
  say "creating $CHECKOV_VENV and installing checkov (about a minute)"
  rm -rf "$CHECKOV_VENV"
  "${PYTHON:-python3}" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --disable-pip-version-check --quiet --upgrade pip >/dev/null
  "$CHECKOV_VENV/bin/pip" install --disable-pip-version-check --quiet -r "$CHECKOV_LOCK"
  echo "$want" > "$CHECKOV_VENV/.alkasba-stamp"
  say "installed: $("$CHECKOV_VENV/bin/checkov" --version) (checkov)"
fi
