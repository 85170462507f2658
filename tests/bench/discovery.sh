#!/usr/bin/env bash
# tests/bench/discovery.sh - the peer-ID protocol's timings (issue 9): time
# from process start (and from listen) to self found, with all peers up and
# with one listed peer dead; time for the view to converge after the last
# member starts; time to notice a restart. See discovery.py for the method.
#
# Targets: self found <= 20 ms after listen; convergence and restart notice
# <= one interval (1 s).
#
# Environment: REPEAT=10, CORIO_BIN.
set -euo pipefail
bench_name=discovery
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"
bench_need_common_tools
bench_corio_bin
bench_setup
timeout 600 python3 "$(dirname "$0")/discovery.py" "$CORIO_BIN"
