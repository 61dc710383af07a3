#!/usr/bin/env bash
# tools/install-deps.sh — installs, from Debian's packages, whatever the build
# and the tests need and this machine lacks. Safe to run again: it installs
# nothing when everything is there. Needs root (or sudo) only when something
# is missing.
#   tools/install-deps.sh          build + run dependencies
#   tools/install-deps.sh --test   also what the tests need (cmocka, clang, libFuzzer)
set -euo pipefail

want_test=0
[[ ${1:-} == --test ]] && want_test=1

missing=()
need() { # need PACKAGE TEST-COMMAND...
  local pkg=$1; shift
  "$@" >/dev/null 2>&1 || missing+=("$pkg")
}
have_header() { [[ -f /usr/include/$1 || -f /usr/include/x86_64-linux-gnu/$1 || -f /usr/include/aarch64-linux-gnu/$1 ]]; }

need gcc command -v gcc
need make command -v make
need cmake command -v cmake
need ninja-build command -v ninja
need pkg-config command -v pkg-config
need libzstd-dev have_header zstd.h
need libxxhash-dev have_header xxhash.h
need python3 command -v python3
need libmicrohttpd-dev have_header microhttpd.h
need zlib1g-dev have_header zlib.h
need libpcre2-dev have_header pcre2.h
need libjansson-dev have_header jansson.h
need libyaml-dev have_header yaml.h
need libcurl4-openssl-dev have_header curl/curl.h
need libedit-dev have_header histedit.h
need nodejs command -v node      # the web UI's build (web/: npm ci + esbuild), embedded in meerkat
need npm command -v npm
if (( want_test )); then
  need chromium test -x /usr/bin/chromium        # tests/browser: the status page in headless Chromium
  need chromium-driver command -v chromedriver
  need libcmocka-dev have_header cmocka.h
  need influxdb-client command -v influx
  need curl command -v curl        # the TLS test drives curl
  need openssl command -v openssl  # ...with a certificate made by openssl
  need prometheus command -v prometheus
  need prometheus-alertmanager command -v prometheus-alertmanager  # notifications: the alertmanager channel test
  need python3-aiosmtpd /usr/bin/python3 -c 'import aiosmtpd'               # notifications: the e-mail test's SMTP server
  need clang-14 command -v clang-14
  need libfuzzer-14-dev test -e /usr/lib/llvm-14/lib/libFuzzer.a -o -d /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux
  need libclang-rt-14-dev bash -c 'ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a'
fi

if (( ${#missing[@]} == 0 )); then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
