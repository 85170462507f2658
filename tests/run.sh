#!/usr/bin/env bash
# Installs corio's build and test dependencies (apt-get), builds, and runs the
# whole suite through ctest: the Release tree, the unit tests (and the
# allocation-failure test, for its leak check) again under
# AddressSanitizer+UBSan, and core's tests on the portable ucontext switch,
# the fuzzers for a while, and corio's Docker image as a 3-member cluster
# and its Debian packages in a clean container (tests/docker/cluster_test.sh:
# root, ~2.5 minutes).
# In the Release tree ctest first installs the pinned npm packages (ws,
# playwright-core) into build/npm (the fixture integration.npm_setup).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/deps.sh
corio_install_deps test
jobs=$(nproc)

echo "== Release build: every test"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCORIO_BUILD_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== AddressSanitizer + UBSan build: unit tests, allocation failures under load and the soak (leak check)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCORIO_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest --output-on-failure -j"$jobs" -L unit)
(cd build-asan && ctest --output-on-failure -R '^integration[.]test_(failalloc|soak)$')

echo "== Portable ucontext coroutine switch: core unit tests"
cmake -S . -B build-ucontext -DCMAKE_BUILD_TYPE=Release -DCORIO_CORO_BACKEND=ucontext >/dev/null
cmake --build build-ucontext -j"$jobs"
(cd build-ucontext && ctest --output-on-failure -j"$jobs" -L core)

echo "== libFuzzer (clang, ASan+UBSan): HTTP requests and responses ${CORIO_FUZZ_SECONDS:-30} s each, WebSocket frames and inflate ${CORIO_WS_FUZZ_SECONDS:-15} s each"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCORIO_FUZZ=ON \
    -DCORIO_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_http fuzz_http_response fuzz_ws_frame fuzz_ws_inflate
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
fuzz() { # target seconds dict corpus-dir
    mkdir -p "$corpus/$1"
    "./build-fuzz/tests/$1" -max_total_time="$2" -timeout=10 -dict="$3" -print_final_stats=1 \
        "$corpus/$1" "$4" 2>&1 |
        grep -E "^(#|stat::number_of_executed_units|==|SUMMARY|Done)" | tail -n 5
    return "${PIPESTATUS[0]}"
}
fuzz fuzz_http "${CORIO_FUZZ_SECONDS:-30}" tests/fuzz/http.dict tests/fuzz/corpus/http
fuzz fuzz_http_response "${CORIO_FUZZ_SECONDS:-30}" tests/fuzz/http_response.dict tests/fuzz/corpus/http_response
fuzz fuzz_ws_frame "${CORIO_WS_FUZZ_SECONDS:-15}" tests/fuzz/ws_frame.dict tests/fuzz/corpus/ws_frame
fuzz fuzz_ws_inflate "${CORIO_WS_FUZZ_SECONDS:-15}" tests/fuzz/ws_inflate.dict tests/fuzz/corpus/ws_inflate

echo "== Docker: the image, a 3-node cluster and the Debian packages (Debian's docker.io and docker-compose, a dockerd of the test's own)"
tests/docker/cluster_test.sh

echo "== all tests passed"
