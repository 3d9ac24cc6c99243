#!/usr/bin/env bash
# Installs what the dashboard and its browser tests need: the pinned front-end libraries
# (web/package-lock.json, from the npm registry, into web/node_modules; served by the project,
# never from a CDN) and Debian's Chromium and poppler-utils (headless pages, PDF checks). Does
# nothing when both are already in place.
source "$(dirname "$0")/lib.sh"

need node "apt-get install nodejs npm (Node.js 18 or later)"
need npm "apt-get install npm"
want="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
if [[ "$(cat web/node_modules/.alkasba-stamp 2>/dev/null)" != "$want" ]]; then
  step "installing the pinned front-end libraries (npm ci --prefix web)"
  npm ci --prefix web --no-audit --no-fund --loglevel=error
  echo "$want" > web/node_modules/.alkasba-stamp
fi

if ! command -v chromium >/dev/null || ! command -v pdftotext >/dev/null; then
  step "installing Chromium and poppler-utils (Debian packages)"
  if [[ "$(id -u)" == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null; }
  else
    fail "chromium and pdftotext are needed: sudo apt-get install chromium poppler-utils"
  fi
fi
