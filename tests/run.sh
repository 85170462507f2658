#!/usr/bin/env bash
# Installs corio's build and test dependencies (apt-get), builds, and runs the
# whole suite through ctest: the Release tree, the unit tests again under
# AddressSanitizer+UBSan, and core's tests on the portable ucontext switch.
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

echo "== AddressSanitizer + UBSan build: unit tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCORIO_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest --output-on-failure -j"$jobs" -L unit)

echo "== Portable ucontext coroutine switch: core unit tests"
cmake -S . -B build-ucontext -DCMAKE_BUILD_TYPE=Release -DCORIO_CORO_BACKEND=ucontext >/dev/null
cmake --build build-ucontext -j"$jobs"
(cd build-ucontext && ctest --output-on-failure -j"$jobs" -L core)

echo "== libFuzzer (clang, ASan+UBSan): HTTP parsing and dispatch, ${CORIO_FUZZ_SECONDS:-30} s"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCORIO_FUZZ=ON \
    -DCORIO_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_http
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
./build-fuzz/tests/fuzz_http -max_total_time="${CORIO_FUZZ_SECONDS:-30}" -timeout=10 \
    -dict=tests/fuzz/http.dict -print_final_stats=1 "$corpus" tests/fuzz/corpus/http 2>&1 |
    grep -E "^(#|stat::number_of_executed_units|==|SUMMARY|Done)" | tail -n 5

echo "== all tests passed"
