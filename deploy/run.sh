#!/usr/bin/env bash
# Builds corio (Release) and runs the daemon in the foreground on port 8080
# with built-in defaults. Extra arguments go to the daemon. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/deps.sh
corio_install_deps build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCORIO_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target corio
exec build/server/corio "$@"
