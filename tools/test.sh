#!/usr/bin/env bash
# tools/test.sh — the README's test command: installs what is missing, builds,
# and runs every test: the cmocka unit, crash and integration tests, the same
# again under ASan+UBSan, the example program, and each libFuzzer target for
# a bounded time. Prints ctest's summary for each build and a final line
# "N passed, N failed".
#
#   MK_FUZZ_SECONDS  seconds per fuzz target (default 45)
#   MK_SKIP_ASAN=1   skip the sanitizer build (quicker local runs)
#   MK_SKIP_FUZZ=1   skip the fuzz targets
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools/install-deps.sh --test || { echo "installing dependencies failed" >&2; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
failures=()
step() { # step NAME COMMAND...
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); return 0; fi
  failed=$((failed + 1)); failures+=("$name"); return 1
}

build() { # build DIR CMAKE-ARGS...
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null &&
    ninja -C "$dir" -j "$jobs" >"$dir.log" 2>&1 || { tail -50 "$dir.log"; return 1; }
}

step "build" build "$root/build" || true
step "unit, crash and integration tests" ctest --test-dir "$root/build" -j "$jobs" --output-on-failure

if [[ ${MK_SKIP_ASAN:-0} != 1 ]]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  step "build (ASan+UBSan)" build "$root/build-asan" -DMK_SANITIZE=address,undefined
  step "tests under ASan+UBSan" ctest --test-dir "$root/build-asan" -j "$jobs" --output-on-failure
fi

run_fuzz() { # run_fuzz BINARY CORPUS SECONDS: output kept in a log, shown on failure
  local log="$1.log" dict=() src
  src="$root/tests/fuzz/$(basename "$1").dict"
  [[ -f $src ]] && dict=(-dict="$src")
  "$1" "${dict[@]}" -max_total_time="$3" -timeout=10 -rss_limit_mb=2048 -seed=1 \
    -artifact_prefix="$1-" "$2" >"$log" 2>&1 || { tail -40 "$log"; return 1; }
  grep -E '^Done [0-9]+ runs' "$log" | tail -1 || true
}

if [[ ${MK_SKIP_FUZZ:-0} != 1 ]]; then
  secs=${MK_FUZZ_SECONDS:-45}
  if step "build (libFuzzer)" build "$root/build-fuzz" -DCMAKE_C_COMPILER=clang-14 -DMK_FUZZ=ON \
       -DMK_SANITIZE=address,undefined -DMK_TESTS=ON; then
    # Targets run side by side, one per core: each is single-threaded.
    targets=()
    for f in "$root"/build-fuzz/tests/fuzz_*; do
      [[ -x $f ]] && targets+=("$f")
    done
    for ((i = 0; i < ${#targets[@]}; i += jobs)); do
      pids=()
      for ((k = i; k < i + jobs && k < ${#targets[@]}; k++)); do
        f=${targets[k]}
        name=$(basename "$f")
        corpus="$root/build-fuzz/corpus/$name"
        mkdir -p "$corpus"
        [[ -d $root/tests/fuzz/corpus/$name ]] && cp -n "$root/tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
        run_fuzz "$f" "$corpus" "$secs" >"$f.out" 2>&1 &
        pids+=($!)
      done
      for ((k = i; k < i + jobs && k < ${#targets[@]}; k++)); do
        f=${targets[k]}
        wait "${pids[k - i]}"
        rc=$?
        step "fuzz $(basename "$f") (${secs}s)" bash -c 'cat "$2"; exit "$1"' _ "$rc" "$f.out"
      done
    done
  fi
fi

echo
if (( failed )); then
  echo "failed steps:"
  printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
