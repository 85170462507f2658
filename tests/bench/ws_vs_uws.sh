#!/usr/bin/env bash
# tests/bench/ws_vs_uws.sh - WebSocket echo and broadcast: corio against
# uWebSockets (uWebSockets.js v20.30 through npm @trufflesuite/uws-js-unofficial),
# Node's `ws` and Python's `websockets`, all in one run, with corio-bench's
# io_uring load client (tests/bench/bench_ws.c).
#
# Scenarios (issue 7):
#   echo         CONNS (100) connections, each a request/response loop of
#                32-byte text messages (masked): messages/s, round trip
#                p50/p99. Servers: corio (/ws/echo), uws, ws, python.
#   bcast1000    one publisher and 1,000 subscribers of one room
#                (corio: /ws/chat?room=bench; uws: its pub/sub, ws.subscribe
#                and ws.publish), 64-byte messages, 8 in flight; a message
#                counts when every subscriber has it: deliveries/s,
#                full-delivery p50/p99. Servers: corio, uws.
#   bcast10000   the same with 10,000 subscribers.
# Each server is pinned to CPU 0, the client to CPU 1. Within a scenario the
# runs alternate between the servers (REPEAT each). Every run reconnects, warms
# up WARMUP seconds, then measures DURATION seconds, during which corio-bench
# reads the server's utime+stime (/proc/PID/stat, all threads) plus the time
# of ksoftirqd/0 (network work the kernel deferred on CPU 0 is the server's;
# it matters for io_uring's large batches of sends: column "ksirq%"), its own
# CPU (getrusage, plus ksoftirqd/1) and the machine's busy time (/proc/stat):
# server CPU per message (per delivery), client CPU (the client must not be
# the bottleneck: a run is flagged when the client is above 90% while the
# server is below) and "noise" (CPU used by anything else, in % of a CPU).
# The summary prints
# medians, the ratios corio/uws and the targets:
#   echo:       server CPU per message  <= 0.9 x uWebSockets'
#   bcast*:     server CPU per delivery <= 0.9 x uWebSockets', no subscriber dropped
# A benchmark, not a test: never registered with ctest; every run is bounded
# (corio-bench --duration, plus a `timeout` backstop).
#
# npm packages go to NPM_DIR (default build/bench-npm: uws/ and ws/, each a
# plain `npm install --prefix`, so `ws` runs without optional native add-ons
# exactly as `npm install ws` gives it). Python runs /usr/bin/python3 with
# Debian's python3-websockets (installed with apt-get when missing).
#
# Environment:
#   DURATION=10      measured seconds per run
#   WARMUP=1         seconds of load before each measurement
#   REPEAT=3         runs per server and scenario
#   SCENARIOS="echo bcast1000 bcast10000"   subset, space or comma separated
#   SERVERS="corio uws ws python"   (the broadcast scenarios use corio and uws)
#   CONNS=100        echo connections
#   INFLIGHT=8       broadcast messages in flight
#   CORIO_BIN, BENCH_BIN   default build/server/corio, build/tests/corio-bench
#                    (built, Release, if missing)
#   CORIO_ARGS=...   extra flags for corio
#   NPM_DIR=...      where the npm packages are installed (build/bench-npm)
#   PYTHON=/usr/bin/python3
#   NOISE_PCT=10     runs where other processes used more are flagged NOISY
#   STRICT=1         exit 1 when a target is missed
#   KEEP_TMP=1       keep the temp dir (logs, raw client output)
set -euo pipefail
bench_name=ws_vs_uws
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"

DURATION=$(bench_seconds "${DURATION:-10}")
bench_count WARMUP 1 0
bench_count REPEAT 3
bench_count CONNS 100
bench_count INFLIGHT 8
SCENARIOS=${SCENARIOS:-echo bcast1000 bcast10000}
SERVERS=${SERVERS:-corio uws ws python}
NPM_DIR=${NPM_DIR:-$bench_root/build/bench-npm}
PYTHON=${PYTHON:-/usr/bin/python3}
NOISE_PCT=${NOISE_PCT:-10}
read -r -a scenarios <<<"${SCENARIOS//,/ }"
read -r -a servers <<<"${SERVERS//,/ }"
UWS_PKG=@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0
WS_PKG=ws@8.23.0

for s in "${scenarios[@]}"; do
    case $s in echo | bcast1000 | bcast10000) ;; *) bench_die "unknown scenario '$s' (echo, bcast1000, bcast10000)" ;; esac
done
for s in "${servers[@]}"; do
    case $s in corio | uws | ws | python) ;; *) bench_die "unknown server '$s' (corio, uws, ws, python)" ;; esac
done
[ "$(nproc)" -ge 2 ] || bench_die "needs 2 CPUs (server on CPU 0, client on CPU 1)"
has() { [[ " ${servers[*]} " == *" $1 "* ]]; }

bench_raise_nofile 20000
bench_need_tools taskset=util-linux getconf=libc-bin curl=curl
bench_bench_bin
has corio && bench_corio_bin
if has uws; then
    bench_npm_install "$NPM_DIR/uws" "$UWS_PKG"
fi
if has ws; then
    bench_npm_install "$NPM_DIR/ws" "$WS_PKG"
fi
if has python && ! "$PYTHON" -c 'import websockets' 2>/dev/null; then
    bench_need_tools python3=python3
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-websockets >/dev/null ||
        bench_die "cannot install python3-websockets"
fi
bench_setup

# scenario -> servers that run it
scenario_servers() {
    local s out=()
    for s in "${servers[@]}"; do
        if [ "$1" = echo ] || [ "$s" = corio ] || [ "$s" = uws ]; then out+=("$s"); fi
    done
    echo "${out[@]}"
}

declare -A pid port
for s in "${servers[@]}"; do
    port[$s]=$(bench_free_port)
    case $s in
    corio) bench_start_corio "pid[corio]" "${port[corio]}" "$bench_tmp/corio.log" 0 ;;
    uws)
        bench_start_bg "pid[uws]" "$bench_tmp/uws.log" 0 env NODE_PATH="$NPM_DIR/uws/node_modules" \
            node "$bench_root/tests/bench/ws_server.js" uws "${port[uws]}"
        bench_wait_line "${pid[uws]}" "$bench_tmp/uws.log" '^listening'
        ;;
    ws)
        bench_start_bg "pid[ws]" "$bench_tmp/ws.log" 0 env NODE_PATH="$NPM_DIR/ws/node_modules" \
            node "$bench_root/tests/bench/ws_server.js" ws "${port[ws]}"
        bench_wait_line "${pid[ws]}" "$bench_tmp/ws.log" '^listening'
        ;;
    python)
        bench_start_bg "pid[python]" "$bench_tmp/python.log" 0 "$PYTHON" \
            "$bench_root/tests/bench/ws_server.py" "${port[python]}"
        bench_wait_line "${pid[python]}" "$bench_tmp/python.log" '^listening'
        ;;
    esac
done

client_cmd() { # scenario server [smoke] -> the client command, one word per line
    local sc=$1 sv=$2 smoke=${3:-}
    printf '%s\n' "$BENCH_BIN"
    case $sc in
    echo) printf '%s\n' ws-echo --path /ws/echo --conns "$CONNS" --size 32 ;;
    bcast1000) printf '%s\n' ws-broadcast --path '/ws/chat?room=bench' --conns 1000 --size 64 \
        --inflight "$INFLIGHT" --sources 2 ;;
    bcast10000) printf '%s\n' ws-broadcast --path '/ws/chat?room=bench' --conns 10000 --size 64 \
        --inflight "$INFLIGHT" --sources 4 ;;
    esac
    if [ -n "$smoke" ]; then
        printf '%s\n' --duration 0.3 --warmup 0
    else
        printf '%s\n' --duration "$DURATION" --warmup "$WARMUP"
    fi
    printf '%s\n' --cpu 1 --server-pid "${pid[$sv]}" "127.0.0.1:${port[$sv]}"
}

echo "# corio vs uWebSockets, ws, websockets: $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# command: DURATION=$DURATION WARMUP=$WARMUP REPEAT=$REPEAT CONNS=$CONNS INFLIGHT=$INFLIGHT SCENARIOS='${scenarios[*]}' SERVERS='${servers[*]}' $0"
for s in "${servers[@]}"; do
    case $s in
    corio) echo "# corio: taskset -c 0 $CORIO_BIN --listen 127.0.0.1:${port[corio]} --access-log off --log-level warn${CORIO_ARGS:+ $CORIO_ARGS} (pid ${pid[corio]})" ;;
    uws) echo "# uws: taskset -c 0 node $(node --version) tests/bench/ws_server.js uws ${port[uws]} ($UWS_PKG, native addon; pid ${pid[uws]})" ;;
    ws) echo "# ws: taskset -c 0 node $(node --version) tests/bench/ws_server.js ws ${port[ws]} ($WS_PKG; pid ${pid[ws]})" ;;
    python) echo "# python: taskset -c 0 $PYTHON tests/bench/ws_server.py ${port[python]} (websockets $("$PYTHON" -c 'import websockets; print(websockets.__version__)'), $("$PYTHON" --version); pid ${pid[python]})" ;;
    esac
done
echo "# client: $BENCH_BIN, pinned to CPU 1; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Smoke runs: every server answers correctly before anything is measured.
for sc in "${scenarios[@]}"; do
    for s in $(scenario_servers "$sc"); do
        mapfile -t cmd < <(client_cmd "$sc" "$s" smoke)
        if ! out=$(timeout -k 5 120 "${cmd[@]}" 2>&1); then
            echo "$out" >&2
            bench_die "$s fails the $sc smoke run: ${cmd[*]}"
        fi
    done
done

results=$bench_tmp/results.tsv
: >"$results"
for sc in "${scenarios[@]}"; do
    read -r -a svs <<<"$(scenario_servers "$sc")"
    for s in "${svs[@]}"; do
        echo "# $sc $s: taskset -c 0 <$s>; $(client_cmd "$sc" "$s" | tr '\n' ' ')"
    done
    for ((i = 1; i <= REPEAT; i++)); do
        for s in "${svs[@]}"; do
            mapfile -t cmd < <(client_cmd "$sc" "$s")
            out=$bench_tmp/client-$sc-$s-$i.txt
            rc=0
            timeout -k 5 $((DURATION + WARMUP + 300)) "${cmd[@]}" >"$out" 2>&1 || rc=$?
            kill -0 "${pid[$s]}" 2>/dev/null || bench_die "$s died during the run"
            line=$(grep '^RESULT ' "$out" | tail -n 1) || true
            if [ -z "$line" ]; then
                cat "$out" >&2
                bench_die "no RESULT from corio-bench against $s (exit $rc): ${cmd[*]}"
            fi
            f() { bench_result_field "$line" "$1"; }
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$s" "$i" \
                "$(f per_s)" "$(f p50_us)" "$(f p99_us)" "$(f server_us)" "$(f client_cpu_pct)" \
                "$(f server_cpu_pct)" "$(f noise_pct)" "$(f errors)" "$(f lost)" "$(f msgs)" \
                "$(f sirq_server_pct)" "$(f server_proc_us)" >>"$results"
            note=
            [ "$(f errors)" != 0 ] || [ "$(f lost)" != 0 ] &&
                note="$note, ERRORS $(f errors), lost $(f lost): $(grep -m1 'first:' "$out" | sed 's/.*first: //')"
            awk -v n="$(f noise_pct)" -v t="$NOISE_PCT" 'BEGIN { exit !(n > t) }' &&
                note="$note, NOISY: other processes used $(f noise_pct)% of a CPU"
            awk -v c="$(f client_cpu_pct)" -v s="$(f server_cpu_pct)" 'BEGIN { exit !(c > 90 && s < 90) }' &&
                note="$note, client at $(f client_cpu_pct)%, server at $(f server_cpu_pct)%: client-bound"
            printf '%-10s %-6s run %d/%d: %10.0f %s/s  p50 %8.1f us  p99 %8.1f us  server %6.3f us/%s (%5.1f%% CPU)  client %5.1f%%%s\n' \
                "$sc" "$s" "$i" "$REPEAT" "$(f per_s)" "$([ "$sc" = echo ] && echo msg || echo dlv)" \
                "$(f p50_us)" "$(f p99_us)" "$(f server_us)" "$([ "$sc" = echo ] && echo msg || echo dlv)" \
                "$(f server_cpu_pct)" "$(f client_cpu_pct)" "$note"
            [ "$sc" = echo ] || sleep 1 # let the server take down 10,000 connections
        done
    done
done

med() { # scenario server column: median over the runs
    awk -F'\t' -v sc="$1" -v sv="$2" -v c="$3" '$1 == sc && $2 == sv { print $c }' "$results" |
        bench_median
}
sum() { # scenario server column: sum over the runs
    awk -F'\t' -v sc="$1" -v sv="$2" -v c="$3" '$1 == sc && $2 == sv { s += $c } END { print s + 0 }' "$results"
}
ratio() { # a b -> a/b, or nan
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b <= 0) print "nan"; else printf "%.3f\n", a / b }'
}

echo
echo "== medians of $REPEAT runs (${DURATION} s each); echo: per message, bcast: per delivery"
printf '%-10s %-6s %12s %10s %10s %12s %8s %8s %7s %7s %7s %5s\n' scenario server "msgs/s" "p50 us" \
    "p99 us" "server us" "server%" "ksirq%" "client%" "noise%" errors lost
for sc in "${scenarios[@]}"; do
    for s in $(scenario_servers "$sc"); do
        printf '%-10s %-6s %12.0f %10.1f %10.1f %12.3f %8.1f %8.1f %7.1f %7.1f %7d %5d\n' "$sc" "$s" \
            "$(med "$sc" "$s" 4)" "$(med "$sc" "$s" 5)" "$(med "$sc" "$s" 6)" "$(med "$sc" "$s" 7)" \
            "$(med "$sc" "$s" 9)" "$(med "$sc" "$s" 14)" "$(med "$sc" "$s" 8)" "$(med "$sc" "$s" 10)" \
            "$(sum "$sc" "$s" 11)" "$(sum "$sc" "$s" 12)"
    done
done
noisy=$(awk -F'\t' -v n="$NOISE_PCT" '$10 > n' "$results" | wc -l)
if [ "$noisy" -gt 0 ]; then
    echo "warning: other processes took > ${NOISE_PCT}% of a CPU during $noisy of the runs: figures are unreliable;"
    echo "         run on an otherwise idle machine"
fi

missed=0
if has corio; then
    echo
    echo "== corio / other server, ratios of the medians (server CPU per message or delivery, msgs/s, p99)"
    for sc in "${scenarios[@]}"; do
        for s in $(scenario_servers "$sc"); do
            [ "$s" = corio ] && continue
            r_cpu=$(ratio "$(med "$sc" corio 7)" "$(med "$sc" "$s" 7)")
            r_rate=$(ratio "$(med "$sc" corio 4)" "$(med "$sc" "$s" 4)")
            r_p99=$(ratio "$(med "$sc" corio 6)" "$(med "$sc" "$s" 6)")
            verdict=
            if [ "$s" = uws ]; then
                if awk -v v="$r_cpu" 'BEGIN { exit !(v != "nan" && v + 0 <= 0.9) }'; then
                    verdict="target CPU <= 0.9x uWS: ok"
                else
                    verdict="target CPU <= 0.9x uWS: MISSED"
                    missed=$((missed + 1))
                fi
                if [ "$sc" != echo ]; then
                    if [ "$(sum "$sc" corio 12)" -eq 0 ] && [ "$(sum "$sc" corio 11)" -eq 0 ]; then
                        verdict+="; no subscriber dropped: ok"
                    else
                        verdict+="; subscribers dropped or errors: MISSED"
                        missed=$((missed + 1))
                    fi
                fi
            fi
            printf '%-10s corio/%-6s CPU x%-6s msgs/s x%-6s p99 x%-6s %s\n' "$sc" "$s" "$r_cpu" \
                "$r_rate" "$r_p99" "$verdict"
        done
    done
    echo
    bench_verdict "$missed" "$noisy"
fi
bench_raw_and_exit "$results" "$missed" \
    "scenario server run per_s p50_us p99_us server_us client_cpu_pct server_cpu_pct noise_pct errors lost msgs sirq_server_pct server_proc_us"
