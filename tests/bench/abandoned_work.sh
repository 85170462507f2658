#!/usr/bin/env bash
# tests/bench/abandoned_work.sh - does CPU work stop when nobody waits for it?
# CLIENTS (40) clients each POST /hash?iterations=10000000 (seconds of PBKDF2
# on the thread pool, on any CPU) and give up after GIVE_UP (1) second, as
# curl --max-time does. Meanwhile GET /plaintext is timed every 100 ms on a
# fresh connection.
#
# Target (issue 6): one second after the clients gave up the server uses less
# than 10% of a core (its CPU time over the following second, from
# /proc/PID/stat), and /plaintext answers at once throughout.
#
# Environment: REPEAT=3 (medians), CLIENTS=40, GIVE_UP=1, CORIO_BIN,
# CORIO_ARGS, CORIO_CPUS (pin corio), KEEP_TMP=1.
set -euo pipefail
bench_name=abandoned_work
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"
bench_count REPEAT 3
bench_count CLIENTS 40
bench_count GIVE_UP 1

bench_need_tools curl=curl taskset=util-linux getconf=libc-bin
bench_corio_bin
bench_setup
hz=$(getconf CLK_TCK)

run_once() { # -> "cpu_pct_after plaintext_max_ms plaintext_fails"
    local port pid base i t0 t1 lat_file=$bench_tmp/lat.$1
    port=$(bench_free_port)
    bench_start_corio pid "$port" "$bench_tmp/corio.$1.log" "${CORIO_CPUS:-}"
    base=http://127.0.0.1:$port
    : >"$lat_file"
    # /plaintext every 100 ms until told to stop
    (
        while [ ! -e "$bench_tmp/stop.$1" ]; do
            curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 5 \
                "$base/plaintext" >>"$lat_file" || echo "000 5" >>"$lat_file"
            sleep 0.1
        done
    ) &
    local sampler=$!
    local clients=()
    for i in $(seq 1 "$CLIENTS"); do
        curl -s -o /dev/null --max-time "$GIVE_UP" -X POST --data-binary "pw-$i" \
            "$base/hash?iterations=10000000" &
        clients+=($!)
    done
    for i in "${clients[@]}"; do
        wait "$i" 2>/dev/null || true
    done
    sleep 1 # one second after they gave up...
    t0=$(bench_cpu_ticks "$pid")
    sleep 1 # ...the CPU the server uses over the next second
    t1=$(bench_cpu_ticks "$pid")
    touch "$bench_tmp/stop.$1"
    wait "$sampler" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    awk -v d=$((t1 - t0)) -v hz="$hz" '
        { if ($1 != "200") fails++; ms = $2 * 1000; if (ms > max) max = ms }
        END { printf "%.1f %.1f %d\n", 100 * d / hz, max, fails }' "$lat_file"
}

echo "# corio: $CORIO_BIN; $CLIENTS clients give up after $GIVE_UP s on 10M-iteration /hash"
echo "# run cpu_pct_1s_after plaintext_max_ms plaintext_failures"
for r in $(seq 1 "$REPEAT"); do
    line=$(run_once "$r")
    echo "$r $line"
    echo "$line" >>"$bench_tmp/results"
done
cpu=$(awk '{ print $1 }' "$bench_tmp/results" | bench_median)
lat=$(awk '{ print $2 }' "$bench_tmp/results" | bench_median)
echo "median: cpu ${cpu}% of a core one second after (target < 10%), /plaintext max ${lat} ms"
