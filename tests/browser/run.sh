#!/usr/bin/env bash
# tests/browser/run.sh — ctest's entry for the browser tests: installs
# tests/browser/node_modules from the committed lock when missing or stale
# (stamp .mk-lock-sha256; a lock serialises parallel build trees), then runs
# test.mjs. Exit 77 (ctest: skipped) only when Chromium is missing.
set -euo pipefail
cd "$(dirname "$0")"
[[ -x /usr/bin/chromium ]] || { echo "SKIP: /usr/bin/chromium is missing (apt-get install chromium)"; exit 77; }
exec 9>.install.lock
flock 9
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat node_modules/.mk-lock-sha256 2>/dev/null || true)
if [[ $want != "$have" ]]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.mk-lock-sha256
fi
flock -u 9
exec node test.mjs "$@"
