#!/usr/bin/env bash
# tests/bench/status_viewers.sh - what viewers of the status page cost:
# corio's CPU time while VIEWERS (100) WebSocket clients are subscribed to
# /ws/status (one snapshot a second, framed once for all of them), against
# the same corio with none, over WINDOW (30) seconds each, REPEAT (3) times
# in turn.
#
# Target (issue 12): 100 viewers cost < 1% of a core at one snapshot a
# second.
#
# corio is pinned to CPU 0 (--workers 1, access log off), the viewers
# (`corio-bench ws-idle --path /ws/status`, which reads every message) to
# CPU 1. The server's CPU is utime+stime of all its threads
# (/proc/PID/stat) over the window; the snapshot's own cost (a copy of
# each worker's counters, the encoding, one publish) is in both figures,
# the viewers' is the difference. Pings are off so that only the
# snapshots move.
#
# Environment: VIEWERS=100, WINDOW=30, REPEAT=3, CORIO_BIN, BENCH_BIN,
# KEEP_TMP=1.
set -euo pipefail
bench_name=status_viewers
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"
bench_count VIEWERS 100
bench_count WINDOW 30
bench_count REPEAT 3
bench_need_tools taskset=util-linux curl=curl
bench_bench_bin
bench_corio_bin
bench_setup

cpu_client=()
[ "$(nproc)" -ge 2 ] && cpu_client=(--cpu 1)
hz=$(getconf CLK_TCK)
port=$(bench_free_port)
cat >"$bench_tmp/corio.json" <<'EOF'
{ "websocket": { "ping_interval_ms": 0, "idle_timeout_ms": 0 } }
EOF
bench_start_corio pid "$port" "$bench_tmp/corio.log" 0 --workers 1 --config "$bench_tmp/corio.json"
echo "# status page viewers, $(date -u '+%Y-%m-%d %H:%M:%SZ'), VIEWERS=$VIEWERS WINDOW=${WINDOW}s REPEAT=$REPEAT, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# corio: taskset -c 0 $CORIO_BIN --listen 127.0.0.1:$port --access-log off --log-level warn --workers 1 --config $bench_tmp/corio.json"

# cpu_percent: corio's CPU over WINDOW seconds, as % of one core
cpu_percent() {
    local t0 t1
    t0=$(bench_cpu_ticks "$pid")
    sleep "$WINDOW"
    t1=$(bench_cpu_ticks "$pid")
    awk -v d=$((t1 - t0)) -v hz="$hz" -v w="$WINDOW" 'BEGIN { printf "%.3f", 100 * d / hz / w }'
}

none=() with=() snaps=()
for ((r = 1; r <= REPEAT; r++)); do
    none+=("$(cpu_percent)")
    fifo=$bench_tmp/hold.fifo
    rm -f "$fifo"
    mkfifo "$fifo"
    exec 9<>"$fifo"
    cmd=("$BENCH_BIN" ws-idle --path /ws/status --conns "$VIEWERS" --hold $((WINDOW * 3))
        "${cpu_client[@]}" "127.0.0.1:$port")
    [ "$r" = 1 ] && echo "# viewers: ${cmd[*]}"
    timeout -k 5 $((WINDOW * 3 + 60)) "${cmd[@]}" <"$fifo" 9>&- >"$bench_tmp/client$r" 2>&1 &
    cpid=$!
    bench_pids+=("$cpid")
    t0=$SECONDS
    until grep -q '^READY' "$bench_tmp/client$r"; do
        if ! kill -0 "$cpid" 2>/dev/null || [ $((SECONDS - t0)) -gt 60 ]; then
            exec 9>&-
            cat "$bench_tmp/client$r" >&2
            bench_die "the viewers did not connect"
        fi
        sleep 0.2
    done
    sleep 1
    ws_open=$(curl -sf "http://127.0.0.1:$port/status.json" |
        sed -n 's/.*"connections":{"http":[0-9]*,"ws":\([0-9]*\)}.*/\1/p')
    [ "$ws_open" = "$VIEWERS" ] || bench_die "the server counts $ws_open viewers, not $VIEWERS"
    out0=$(curl -sf "http://127.0.0.1:$port/status.json" | sed -n 's/.*"bytes":{"in":[0-9]*,"out":\([0-9]*\),.*/\1/p')
    with+=("$(cpu_percent)")
    out1=$(curl -sf "http://127.0.0.1:$port/status.json" | sed -n 's/.*"bytes":{"in":[0-9]*,"out":\([0-9]*\),.*/\1/p')
    snaps+=("$(((out1 - out0) / WINDOW / VIEWERS))")
    exec 9>&- # the viewers close and exit
    wait "$cpid" || {
        cat "$bench_tmp/client$r" >&2
        bench_die "the viewers failed or were closed during the measurement"
    }
    echo "run $r: no viewers ${none[-1]}% of a core; $VIEWERS viewers ${with[-1]}%; ~${snaps[-1]} bytes a second to each viewer"
done

m0=$(printf '%s\n' "${none[@]}" | bench_median)
m1=$(printf '%s\n' "${with[@]}" | bench_median)
echo
echo "== corio's CPU, median of $REPEAT windows of ${WINDOW} s (% of one core)"
printf '%-28s %8s\n' "no viewers" "$m0%" "$VIEWERS viewers of /ws/status" "$m1%"
echo "$VIEWERS viewers cost $(awk -v a="$m1" -v b="$m0" 'BEGIN { printf "%.3f", a - b }')% of a core (target: < 1%)"
