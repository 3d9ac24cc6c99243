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

# checkov and the SAM CLI each in their own virtualenv: their pins (boto3 among them) would
# fight LocalStack's and each other's.
tool_venv checkov "$REPO/tests/checkov.lock" checkov
tool_venv sam "$REPO/tests/sam.lock" sam
