#!/usr/bin/env bash
# tests/bench/ws_idle.sh - server RSS per idle WebSocket connection: CONNS
# (18,000) connections opened with corio-bench ws-idle (its own handshake),
# then left idle, against corio (/ws/echo, without and with permessage-deflate
# negotiated), uWebSockets (npm @trufflesuite/uws-js-unofficial 20.30), Node's
# `ws` and Python's `websockets`.
#
# Target (issue 7): corio <= 0.5 KiB per idle connection (no coroutine stack,
# no receive buffer). Measured in the issue: uWebSockets 0.62 KiB, Node ws
# 6.3 KiB, Python websockets 16.2 KiB.
#
# The servers run one after the other, each freshly started, pinned to CPU 0
# with `ulimit -n` 20000 (the machine's per-process maximum); the clients on
# CPU 1. For each server:
#   1. warm-up: `corio-bench ws-echo` with 256 connections for 1 s, then
#      closed, so that what a burst of active connections leaves behind (pooled
#      states, buffers, JIT code) is in the baseline, not charged to idle ones;
#   2. baseline VmRSS of the serving process (/proc/PID/status);
#   3. PROCS (2) `corio-bench ws-idle` processes open CONNS/PROCS connections
#      each, from their own 127.0.0.x source addresses (4 per process), with
#      at most 64 handshakes in progress per process (TOUCH=1: and one 32-byte
#      message echoed on each before it idles);
#   4. VmRSS once all are open and SETTLE (2) seconds later; the result is
#      (RSS_later - RSS_baseline) / CONNS. The clients then close; any
#      connection the server closed meanwhile makes the figure invalid.
# The servers' own pings and idle timeouts are off, so that nothing happens on
# the idle connections during the measurement:
#   corio:  --config {"limits": {"max_connections": 100000},
#                     "timeouts": {"keepalive_ms": 600000},
#                     "websocket": {"ping_interval_ms": 0, "idle_timeout_ms": 0}}
#           (compression on, the default: negotiated for "corio-deflate", whose
#           client offers "permessage-deflate; client_max_window_bits")
#   uws:    IDLE=1 node tests/bench/ws_server.js uws (idleTimeout 0, no pings)
#   ws:     IDLE=1 node tests/bench/ws_server.js ws
#   python: IDLE=1 /usr/bin/python3 tests/bench/ws_server.py (ping_interval None)
# RSS is user-space memory only: kernel socket buffers count for no server.
#
# Environment: CONNS=18000, PROCS=2, SERVERS="corio corio-deflate uws ws python",
# TOUCH=0, SETTLE=2, TIMEOUT=300 (seconds, per server), CORIO_BIN, BENCH_BIN,
# CORIO_ARGS, NPM_DIR (build/bench-npm), PYTHON (/usr/bin/python3), KEEP_TMP=1.
set -euo pipefail
bench_name=ws_idle
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"

bench_count CONNS 18000
bench_count PROCS 2
bench_count TOUCH 0 0
bench_count SETTLE 2 0
bench_count TIMEOUT 300
SERVERS=${SERVERS:-corio corio-deflate uws ws python}
NPM_DIR=${NPM_DIR:-$bench_root/build/bench-npm}
PYTHON=${PYTHON:-/usr/bin/python3}
read -r -a servers <<<"${SERVERS//,/ }"
UWS_PKG=@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0
WS_PKG=ws@8.23.0
TARGET_BYTES=512
[ "$PROCS" -le 60 ] || bench_die "PROCS must be at most 60 (4 source addresses each)"
for s in "${servers[@]}"; do
    case $s in corio | corio-deflate | uws | ws | python) ;;
    *) bench_die "unknown server '$s' (corio, corio-deflate, uws, ws, python)" ;;
    esac
done
has() { [[ " ${servers[*]} " == *" $1 "* ]]; }

bench_raise_nofile 20000
[ "$(ulimit -n)" -ge $((CONNS + 100)) ] ||
    bench_die "ulimit -n is $(ulimit -n): too low for CONNS=$CONNS (the server needs CONNS + ~100)"
[ "$(ulimit -n)" -ge $((CONNS / PROCS + 100)) ] || bench_die "raise PROCS: a client process may open $(ulimit -n) files"
bench_need_tools taskset=util-linux curl=curl
bench_bench_bin
if has corio || has corio-deflate; then bench_corio_bin; fi
has uws && bench_npm_install "$NPM_DIR/uws" "$UWS_PKG"
has ws && bench_npm_install "$NPM_DIR/ws" "$WS_PKG"
if has python && ! "$PYTHON" -c 'import websockets' 2>/dev/null; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-websockets >/dev/null ||
        bench_die "cannot install python3-websockets"
fi
bench_setup

cpu_client=()
[ "$(nproc)" -ge 2 ] && cpu_client=(--cpu 1)

stop() { # pid (a server with 18,000 sockets takes seconds to exit)
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
}

touch_arg=()
[ "$TOUCH" = 1 ] && touch_arg=(--touch)
echo "# idle WebSocket connections, $(date -u '+%Y-%m-%d %H:%M:%SZ'), CONNS=$CONNS PROCS=$PROCS TOUCH=$TOUCH, ulimit -n $(ulimit -n), load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A result anon
for s in "${servers[@]}"; do
    port=$(bench_free_port)
    deflate=()
    case $s in
    corio | corio-deflate)
        cat >"$bench_tmp/corio.json" <<'EOF'
{
  "limits": { "max_connections": 100000 },
  "timeouts": { "keepalive_ms": 600000 },
  "websocket": { "ping_interval_ms": 0, "idle_timeout_ms": 0 }
}
EOF
        bench_start_corio pid "$port" "$bench_tmp/$s.log" 0 --config "$bench_tmp/corio.json"
        echo "# $s: taskset -c 0 $CORIO_BIN --listen 127.0.0.1:$port --access-log off --log-level warn --config $bench_tmp/corio.json${CORIO_ARGS:+ $CORIO_ARGS}"
        [ "$s" = corio-deflate ] && deflate=(--deflate)
        ;;
    uws | ws)
        bench_start_bg pid "$bench_tmp/$s.log" 0 env IDLE=1 NODE_PATH="$NPM_DIR/$s/node_modules" \
            node "$bench_root/tests/bench/ws_server.js" "$s" "$port"
        bench_wait_line "$pid" "$bench_tmp/$s.log" '^listening'
        echo "# $s: IDLE=1 taskset -c 0 node $(node --version) tests/bench/ws_server.js $s $port"
        ;;
    python)
        bench_start_bg pid "$bench_tmp/$s.log" 0 env IDLE=1 "$PYTHON" \
            "$bench_root/tests/bench/ws_server.py" "$port"
        bench_wait_line "$pid" "$bench_tmp/$s.log" '^listening'
        echo "# $s: IDLE=1 taskset -c 0 $PYTHON tests/bench/ws_server.py $port"
        ;;
    esac
    # 1. warm-up
    timeout -k 5 120 "$BENCH_BIN" ws-echo --conns 256 --duration 1 --warmup 0 "${cpu_client[@]}" \
        "127.0.0.1:$port" >"$bench_tmp/$s.warmup" 2>&1 || {
        cat "$bench_tmp/$s.warmup" >&2
        bench_die "$s: the warm-up failed"
    }
    sleep 1
    # 2. baseline
    rss0=$(bench_rss_kb "$pid")
    anon0=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")
    # 3. the idle connections; each client holds them until its stdin ends
    fifo=$bench_tmp/hold.fifo
    rm -f "$fifo"
    mkfifo "$fifo"
    exec 9<>"$fifo"
    cpids=()
    per=$(((CONNS + PROCS - 1) / PROCS))
    left=$CONNS
    t0=$SECONDS
    for ((k = 0; k < PROCS; k++)); do
        n=$((left < per ? left : per))
        left=$((left - n))
        cmd=("$BENCH_BIN" ws-idle --conns "$n" --sources 4 --source-base $((1 + 4 * k)) --parallel 64
            --hold "$TIMEOUT" "${cpu_client[@]}" "${deflate[@]}" "${touch_arg[@]}" "127.0.0.1:$port")
        [ $k = 0 ] && echo "# $s clients: $PROCS x ${cmd[*]} (process k of 0..$((PROCS - 1)): --source-base 1+4k)"
        timeout -k 5 $((TIMEOUT + 60)) "${cmd[@]}" <"$fifo" 9>&- >"$bench_tmp/$s.client$k" 2>&1 &
        cpids+=($!)
        bench_pids+=($!)
    done
    for ((k = 0; k < PROCS; k++)); do
        while ! grep -q '^READY' "$bench_tmp/$s.client$k"; do
            if ! kill -0 "${cpids[k]}" 2>/dev/null || [ $((SECONDS - t0)) -gt "$TIMEOUT" ]; then
                exec 9>&-
                cat "$bench_tmp/$s.client$k" >&2
                bench_die "$s: client $k did not open its connections"
            fi
            sleep 0.2
        done
    done
    opened=$((SECONDS - t0))
    # 4. measure
    rss1=$(bench_rss_kb "$pid")
    sleep "$SETTLE"
    rss2=$(bench_rss_kb "$pid")
    anon2=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")
    exec 9>&- # the clients close their connections and exit
    ok=1
    ndeflate=0
    for ((k = 0; k < PROCS; k++)); do
        wait "${cpids[k]}" || ok=0
        line=$(grep '^RESULT' "$bench_tmp/$s.client$k" || true)
        [ "$(bench_result_field "$line" closed_by_server)" = 0 ] || ok=0
        ndeflate=$((ndeflate + $(bench_result_field "$line" deflate)))
    done
    if [ $ok = 0 ]; then
        cat "$bench_tmp/$s.client"* >&2
        bench_die "$s: connections were closed or failed during the measurement: figure invalid"
    fi
    if [ "$s" = corio-deflate ] && [ "$ndeflate" -ne "$CONNS" ]; then
        bench_die "$s: permessage-deflate negotiated on $ndeflate of $CONNS connections"
    fi
    result[$s]=$(((rss2 - rss0) * 1024 / CONNS))
    anon[$s]=$(((anon2 - anon0) * 1024 / CONNS))
    echo "$s: $CONNS connections open in ${opened} s (deflate negotiated on $ndeflate); RSS before $rss0 kB," \
        "all open $rss1 kB, ${SETTLE} s later $rss2 kB: $(awk -v b="${result[$s]}" 'BEGIN { printf "%.2f", b / 1024 }') KiB" \
        "per connection (anonymous memory ${anon[$s]} B)"
    stop "$pid"
done

echo
echo "== server RSS per idle WebSocket connection ($CONNS connections, TOUCH=$TOUCH, ${SETTLE} s after all are open)"
for s in "${servers[@]}"; do
    printf '%-14s %6d bytes  %6.2f KiB\n' "$s" "${result[$s]}" "$(awk -v b="${result[$s]}" 'BEGIN { print b / 1024 }')"
done
for s in corio corio-deflate; do
    [ -n "${result[$s]:-}" ] || continue
    verdict=MISSED
    [ "${result[$s]}" -le $TARGET_BYTES ] && verdict=ok
    line="target: $s <= $TARGET_BYTES bytes per idle connection: $verdict"
    if [ -n "${result[uws]:-}" ]; then
        line+=$(awk -v a="${result[$s]}" -v b="${result[uws]}" \
            'BEGIN { if (b > 0) printf "; %s / uws: x%.2f", "'"$s"'", a / b }')
    fi
    echo "$line"
done
