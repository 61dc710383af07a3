#!/usr/bin/env bash
# web/build.sh OUT.c — what CMake runs to build the UI: `npm ci` only when
# node_modules is missing or was installed from another package-lock.json
# (stamp node_modules/.mk-lock-sha256), then the esbuild bundle into
# web/dist and the generated C file OUT.c. Several build trees (build,
# build-asan) share web/node_modules and web/dist, so a lock serialises them.
set -euo pipefail
out=$1
cd "$(dirname "$0")"
exec 9>.build.lock
flock 9
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat node_modules/.mk-lock-sha256 2>/dev/null || true)
if [[ $want != "$have" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.mk-lock-sha256
fi
node build.mjs --c "$out"
