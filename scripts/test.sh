#!/usr/bin/env bash
# Set-up command 2: runs every test (unit, simulator over HTTP, integration against LocalStack
# with the real binaries). Starts LocalStack if needed and stops it again if it started it.
source "$(dirname "$0")/lib.sh"

step "installing LocalStack and the test tools (pinned)"
localstack/install.sh
scripts/install-web.sh

step "checking the house format (cargo fmt --check; STYLE.md)"
cargo fmt --all -- --check

step "building (first build: ~10 min on 2 cores)"
cargo build --workspace --bins --tests

# The deployment zips of the ingestion and real-time functions, for this machine's architecture:
# tests/tests/packaging.rs runs what ships. Without LTO here (thin LTO, the deploy default, adds
# ~5 CPU-minutes per function and changes no behaviour); ALKASBA_PACKAGE_LTO=thin to test that.
step "packaging the ingestion and real-time functions (scripts/package.sh --arch x86_64)"
ALKASBA_PACKAGE_LTO="${ALKASBA_PACKAGE_LTO:-off}" scripts/package.sh --arch x86_64 planner fetcher webhook realtime

step "linting (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "starting LocalStack (reused when already healthy)"
started=0
if ! localstack/status.sh >/dev/null 2>&1; then
  localstack/start.sh
  started=1
  trap 'localstack/stop.sh' EXIT
fi

step "linting the SAM templates"
.local/venv/bin/cfn-lint infra/template.yaml tests/fixtures/runner.yaml

step "running the tests"
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
