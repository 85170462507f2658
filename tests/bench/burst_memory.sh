#!/usr/bin/env bash
# tests/bench/burst_memory.sh - memory that returns (issue 8): corio's RSS
# before, during and after a burst, with the heap trimmer on (the default)
# and off (CORIO_NO_TRIM=1), one after the other.
#
# For each mode a fresh corio (pinned to CPU 0) is warmed up with a short
# wrk run (its idle footprint then includes its caches), its RSS is read
# ("idle"), and then for BURST (5) seconds, from CPU 1:
#   wrk -c1000 on GET /plaintext,
#   wrk -c50 POSTing 500 KB bodies to /echo (lua script: wrk.body),
#   corio-bench ws-idle: 4,000 WebSocket connections with permessage-deflate
#     negotiated, one compressed message echoed on each, closed at the end;
# RSS is sampled every 0.5 s during the burst ("peak") and then 1, 2, 3 and 5 s
# after it ended, with no load at all. The issue's target: RSS back within
# 16 MiB of the idle footprint.
#
# Environment: BURST=5, MODES="trim notrim", CORIO_BIN, BENCH_BIN, KEEP_TMP=1.
set -euo pipefail
bench_name=burst_memory
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"
BURST=$(bench_seconds "${BURST:-5}")
MODES=${MODES:-trim notrim}
bench_need_common_tools
bench_corio_bin
bench_bench_bin
bench_setup
bench_raise_nofile 20000

lua=$bench_tmp/post.lua
cat >"$lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 500000)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

conf=$bench_tmp/corio.json
echo '{"limits": {"max_connections": 100000}}' >"$conf"

declare -A idle peak after1 after2 after3 after5
for mode in $MODES; do
    port=$(bench_free_port)
    log=$bench_tmp/corio-$mode.log
    if [ "$mode" = notrim ]; then
        CORIO_NO_TRIM=1 bench_start_corio pid "$port" "$log" 0 --config "$conf"
    else
        bench_start_corio pid "$port" "$log" 0 --config "$conf"
    fi
    url=http://127.0.0.1:$port
    taskset -c 1 timeout 10 wrk -t1 -c50 -d1s "$url/plaintext" >/dev/null
    sleep 2.5 # the warm-up's own memory settles (and, trimming, is given back)
    idle[$mode]=$(bench_rss_kb "$pid")
    taskset -c 1 timeout $((BURST + 10)) wrk -t1 -c1000 -d"${BURST}s" "$url/plaintext" \
        >"$bench_tmp/wrk-plain-$mode.txt" 2>&1 &
    w1=$!
    taskset -c 1 timeout $((BURST + 10)) wrk -t1 -c50 -d"${BURST}s" -s "$lua" "$url/echo" \
        >"$bench_tmp/wrk-echo-$mode.txt" 2>&1 &
    w2=$!
    (sleep "$BURST" | taskset -c 1 timeout $((BURST + 30)) "$BENCH_BIN" ws-idle --conns 4000 \
        --sources 1 --parallel 64 --touch --deflate --path /ws/echo "127.0.0.1:$port" \
        >"$bench_tmp/ws-$mode.txt" 2>&1) &
    w3=$!
    p=${idle[$mode]}
    end=$((SECONDS + BURST))
    while [ $SECONDS -lt $end ]; do
        r=$(bench_rss_kb "$pid")
        [ "$r" -gt "$p" ] && p=$r
        sleep 0.5
    done
    wait $w1 $w2 $w3 || true
    r=$(bench_rss_kb "$pid")
    [ "$r" -gt "$p" ] && p=$r
    peak[$mode]=$p
    sleep 1
    after1[$mode]=$(bench_rss_kb "$pid")
    sleep 1
    after2[$mode]=$(bench_rss_kb "$pid")
    sleep 1
    after3[$mode]=$(bench_rss_kb "$pid")
    sleep 2
    after5[$mode]=$(bench_rss_kb "$pid")
    grep -h "Requests/sec" "$bench_tmp/wrk-plain-$mode.txt" "$bench_tmp/wrk-echo-$mode.txt" |
        sed "s/^/# $mode: /" >&2 || true
    grep -h "RESULT" "$bench_tmp/ws-$mode.txt" | sed "s/^/# $mode: /" >&2 || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done

echo "== corio RSS (KiB) around a ${BURST} s burst (wrk -c1000 /plaintext, wrk -c50 500 KB POST /echo, 4,000 deflate WebSocket echoes)"
printf "%-8s %10s %10s %10s %10s %10s %10s %s\n" mode idle peak "+1 s" "+2 s" "+3 s" "+5 s" "target: +5 s within 16 MiB of idle"
for mode in $MODES; do
    d=$((after5[$mode] - idle[$mode]))
    verdict=$([ $d -le 16384 ] && echo "ok (+$d KiB)" || echo "MISSED (+$d KiB)")
    printf "%-8s %10s %10s %10s %10s %10s %10s %s\n" "$mode" "${idle[$mode]}" "${peak[$mode]}" \
        "${after1[$mode]}" "${after2[$mode]}" "${after3[$mode]}" "${after5[$mode]}" "$verdict"
done
