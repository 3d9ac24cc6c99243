#!/usr/bin/env bash
# Runs integration tests against the deployment packages instead of the workspace's binaries:
# what ships is what is tested, for any architecture the packages were built for.
#
#   scripts/test-packaged.sh [--arch arm64|x86_64] [NEXTEST_FILTER]
#
# Every zip under .local/package/<arch>/ (scripts/package.sh builds them) is unpacked as
# .local/packaged-bin/<arch>/<function>/bootstrap; the workspace's other debug binaries (the CLI,
# the runner, the simulator, functions not packaged) are linked beside them; then the tests run
# with ALKASBA_BIN_DIR and ALKASBA_PACKAGES pointing there. The runner starts an arm64 bootstrap
# under QEMU's user-mode emulator on an x86_64 machine (apt-get install qemu-user-static
# libc6-arm64-cross): behaviour is checked, timings are the emulator's.
#
# Default filter: the packaging tests. Examples:
#   scripts/package.sh --arch arm64 dashboard transform aggregate forecast
#   scripts/test-packaged.sh --arch arm64 'test(/packaged|the_dashboard_shows/)'
source "$(dirname "$0")/lib.sh"

ARCH=arm64
FILTER='test(/packaged/)'
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch)
      [[ $# -ge 2 ]] || fail "--arch needs a value: arm64 or x86_64"
      case "$2" in arm64 | x86_64) ARCH="$2" ;; *) fail "--arch $2: expected arm64 or x86_64" ;; esac
      shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *) FILTER="$1"; shift ;;
  esac
done

PACKAGES="$REPO/.local/package/$ARCH"
compgen -G "$PACKAGES/*/bootstrap.zip" >/dev/null || fail "no packages in $PACKAGES: run scripts/package.sh --arch $ARCH first"

host="$(uname -m)"
qemu_arch="${ARCH/arm64/aarch64}"
if [[ "$qemu_arch" != "$host" ]] && ! command -v "qemu-$qemu_arch-static" >/dev/null; then
  [[ "$qemu_arch" == aarch64 ]] || fail "$ARCH packages on a $host machine need qemu-$qemu_arch-static and that architecture's C library"
  step "installing QEMU's user-mode emulator and the arm64 C library (Debian packages)"
  [[ "$(id -u)" == 0 ]] || fail "qemu-user-static and libc6-arm64-cross are needed: sudo apt-get install qemu-user-static libc6-arm64-cross"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static libc6-arm64-cross >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static libc6-arm64-cross >/dev/null; }
fi

step "building the workspace's binaries and tests (debug)"
cargo build --workspace --bins --tests --quiet

OUT="$REPO/.local/packaged-bin/$ARCH"
step "assembling $OUT"
rm -rf "$OUT"
mkdir -p "$OUT"
packaged=()
for zip in "$PACKAGES"/*/bootstrap.zip; do
  f="$(basename "$(dirname "$zip")")"
  unpack_package "$zip" "$OUT/$f"
  packaged+=("$f")
done
for bin in "$BIN"/*; do
  name="$(basename "$bin")"
  [[ -f "$bin" && -x "$bin" && ! -e "$OUT/$name" ]] && ln -s "$bin" "$OUT/$name"
done
echo "packaged ($ARCH): ${packaged[*]}; every other binary from $BIN" >&2

step "LocalStack and the test tools (pinned)"
localstack/install.sh
scripts/install-web.sh
localstack/status.sh >/dev/null 2>&1 || localstack/start.sh

step "cargo nextest run -p alkasba-it -E '$FILTER' (packaged binaries)"
ALKASBA_BIN_DIR="$OUT" ALKASBA_PACKAGES="$PACKAGES" cargo nextest run -p alkasba-it --no-fail-fast -E "$FILTER"
