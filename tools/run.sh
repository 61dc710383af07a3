#!/usr/bin/env bash
# tools/run.sh — the README's run command: installs what is missing, builds,
# and starts `meerkat serve` on the embedded defaults (data dir
# ./meerkat-data, 127.0.0.1:8086). Extra arguments go to `meerkat serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMK_TESTS=OFF >/dev/null
ninja -C build meerkat >/dev/null
exec build/meerkat serve "$@"
