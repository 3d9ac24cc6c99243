#!/usr/bin/env bash
# Builds the Lambda functions as deployment zips (one `bootstrap` each) with cargo-lambda, the
# builder `sam build` uses for `BuildMethod: rust-cargolambda`, and zig as the linker for
# Amazon Linux 2023's glibc. Both come from PyPI, pinned in scripts/package.lock, into
# .local/package-tools (installed on first use).
#
#   scripts/package.sh [--arch arm64|x86_64|all] [--out DIR] [FUNCTION ...]
#
# Default: every function under functions/, for arm64 (the template's architecture), into
# .local/package/<arch>/<function>/bootstrap.zip, then a table of sizes. Each function is built
# on its own (`-p <function>`) so it links only what it uses: the ingestion and real-time
# functions build deltalake without DataFusion. Deploy builds use thin LTO
# (docs/benchmarks.md): set ALKASBA_PACKAGE_LTO=off to skip it for a quicker local build.
source "$(dirname "$0")/lib.sh"

ARCHES=(arm64)
OUT="$REPO/.local/package"
FUNCTIONS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch)
      [[ $# -ge 2 ]] || fail "--arch needs a value: arm64, x86_64 or all"
      case "$2" in
        arm64 | x86_64) ARCHES=("$2") ;;
        all) ARCHES=(arm64 x86_64) ;;
        *) fail "--arch $2: expected arm64, x86_64 or all" ;;
      esac
      shift 2 ;;
    --out)
      [[ $# -ge 2 ]] || fail "--out needs a directory"
      OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *)
      [[ -f "functions/$1/Cargo.toml" ]] || fail "no function $1 (functions/: $(ls functions | tr '\n' ' '))"
      FUNCTIONS+=("$1"); shift ;;
  esac
done
[[ ${#FUNCTIONS[@]} -gt 0 ]] || mapfile -t FUNCTIONS < <(ls functions)

# The tools, in their own virtualenv (cargo-lambda's and zig's wheels carry the binaries).
TOOLS="$REPO/.local/package-tools"
LOCK="$REPO/scripts/package.lock"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ ! -x "$TOOLS/bin/cargo-lambda" || "$(cat "$TOOLS/.alkasba-stamp" 2>/dev/null)" != "$want" ]]; then
  step "installing cargo-lambda and zig from PyPI (scripts/package.lock) into $TOOLS"
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --disable-pip-version-check --quiet --upgrade pip >/dev/null
  "$TOOLS/bin/pip" install --disable-pip-version-check --quiet -r "$LOCK"
  echo "$want" > "$TOOLS/.alkasba-stamp"
fi
# cargo-lambda finds zig through `python3 -m ziglang` when the venv's python comes first.
export PATH="$TOOLS/bin:$PATH"

if [[ "${ALKASBA_PACKAGE_LTO:-thin}" != off ]]; then
  export CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4
fi

for arch in "${ARCHES[@]}"; do
  case "$arch" in
    arm64) triple=aarch64-unknown-linux-gnu ;;
    x86_64) triple=x86_64-unknown-linux-gnu ;;
  esac
  if ! rustup target list --installed | grep -qx "$triple"; then
    step "adding the Rust standard library for $triple (rustup)"
    rustup target add "$triple" || fail "rustup could not add $triple: build for --arch x86_64 only, or install it"
  fi
  mkdir -p "$OUT/$arch"
  i=0
  for f in "${FUNCTIONS[@]}"; do
    i=$((i + 1))
    step "[$arch $i/${#FUNCTIONS[@]}] $f"
    # The target as `sam build` passes it for provided.al2023 (`--arm64`; x86_64 the same
    # triple), so both share the build: zig links against its default glibc, older than Amazon
    # Linux 2023's 2.34 (the packaging test checks the symbols).
    cargo lambda build --release --quiet -p "$f" --target "$triple" --output-format zip --lambda-dir "$OUT/$arch" \
      || fail "building $f for $arch failed (see above)"
  done
done

step "packages in $OUT"
printf '%-8s %-10s %12s %14s\n' arch function "zip (MB)" "unzipped (MB)"
for arch in "${ARCHES[@]}"; do
  for f in "${FUNCTIONS[@]}"; do
    zip="$OUT/$arch/$f/bootstrap.zip"
    [[ -f "$zip" ]] || fail "$zip is missing after the build"
    unzipped=$(python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")
    awk -v a="$arch" -v f="$f" -v z="$(stat -c %s "$zip")" -v u="$unzipped" 'BEGIN { printf "%-8s %-10s %12.1f %14.1f\n", a, f, z / 1048576, u / 1048576 }'
  done
done
