#!/usr/bin/env bash
# tests/bench/ws_profile.sh - where a WebSocket server's CPU goes under the
# loads of ws_vs_uws.sh: system calls, io_uring submissions and completions
# per message (or delivery), and a cpu-clock profile; optionally corio's exact
# user-space instruction counts under callgrind.
#
# The server (SERVER: corio or uws) is pinned to CPU 0 and loaded by
# corio-bench (SCENARIO: echo, bcast1000 or bcast10000, as in ws_vs_uws.sh)
# pinned to CPU 1. Two seconds into the load, for PERF_SECONDS:
#   perf stat  -e cpu-clock, raw_syscalls:sys_enter, io_uring_enter,
#              sendto/sendmsg/writev/recvfrom/epoll_pwait entries, and the
#              io_uring tracepoints io_uring_submit_req (SQEs: sends,
#              receives re-armed, closes...) and io_uring_complete (CQEs)
#   perf record -e cpu-clock -g (hardware counters are not available here)
# both attached to the server, then prints each count per message (echo) or
# per delivery (broadcast) (the client's rate times the window), the profile
# by object (kernel, corio, libc...) and its top symbols, overall and in user
# space.
#
# CALLGRIND=1 instead runs corio under `valgrind --tool=callgrind` (echo with
# CG_CONNS connections, or broadcast to CG_SUBS subscribers), instrumented
# only for PERF_SECONDS after the warm-up (--instr-atstart=no, then
# callgrind_control -i on/off), and prints
# instructions per message (delivery) in corio's user space (the kernel is not
# counted), with callgrind_annotate's top functions.
#
# Environment: SCENARIO=echo, SERVER=corio, PERF_SECONDS=5, CALLGRIND=0,
# CG_CONNS=20, CG_SUBS=200, CORIO_BIN, BENCH_BIN, NPM_DIR, OUT=dir for
# perf.data and reports (default: a temp dir, kept), CORIO_ARGS.
set -euo pipefail
bench_name=ws_profile
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"

SCENARIO=${SCENARIO:-echo}
SERVER=${SERVER:-corio}
bench_count PERF_SECONDS 5
bench_count CALLGRIND 0 0
bench_count CG_CONNS 20
bench_count CG_SUBS 200
NPM_DIR=${NPM_DIR:-$bench_root/build/bench-npm}
case $SCENARIO in echo | bcast1000 | bcast10000) ;; *) bench_die "SCENARIO: echo, bcast1000 or bcast10000" ;; esac
case $SERVER in corio | uws) ;; *) bench_die "SERVER: corio or uws" ;; esac
[ "$CALLGRIND" = 1 ] && [ "$SERVER" != corio ] && bench_die "CALLGRIND=1 profiles corio only"

bench_raise_nofile 20000
bench_need_tools perf=linux-perf taskset=util-linux curl=curl
[ "$CALLGRIND" = 1 ] && bench_need_tools valgrind=valgrind callgrind_annotate=valgrind
bench_bench_bin
[ "$SERVER" = corio ] && bench_corio_bin
[ "$SERVER" = uws ] && bench_npm_install "$NPM_DIR/uws" @trufflesuite/uws-js-unofficial@20.30.0-unofficial.0
bench_setup
OUT=${OUT:-$(mktemp -d /tmp/corio-ws_profile-out.XXXXXX)}
mkdir -p "$OUT"

port=$(bench_free_port)
if [ "$CALLGRIND" = 1 ]; then
    cmd=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$OUT/callgrind.out.%p"
        "$CORIO_BIN" --listen "127.0.0.1:$port" --access-log off --log-level warn)
    # shellcheck disable=SC2206
    [ -n "${CORIO_ARGS:-}" ] && cmd+=(${CORIO_ARGS})
    bench_start_bg pid "$OUT/server.log" 0 "${cmd[@]}"
    bench_wait_http "$pid" "http://127.0.0.1:$port/plaintext" "$OUT/server.log" 60
elif [ "$SERVER" = corio ]; then
    bench_start_corio pid "$port" "$OUT/server.log" 0
else
    bench_start_bg pid "$OUT/server.log" 0 env NODE_PATH="$NPM_DIR/uws/node_modules" \
        node "$bench_root/tests/bench/ws_server.js" uws "$port"
    bench_wait_line "$pid" "$OUT/server.log" '^listening'
fi

case $SCENARIO in
echo) load=(ws-echo --path /ws/echo --conns "$([ "$CALLGRIND" = 1 ] && echo "$CG_CONNS" || echo 100)" --size 32) ;;
bcast1000) load=(ws-broadcast --path '/ws/chat?room=bench' --conns "$([ "$CALLGRIND" = 1 ] && echo "$CG_SUBS" || echo 1000)" --size 64 --sources 2) ;;
bcast10000) load=(ws-broadcast --path '/ws/chat?room=bench' --conns "$([ "$CALLGRIND" = 1 ] && echo "$CG_SUBS" || echo 10000)" --size 64 --sources 4) ;;
esac
unit=message
[ "$SCENARIO" = echo ] || unit=delivery
warm=2
[ "$CALLGRIND" = 1 ] && warm=5
client=("$BENCH_BIN" "${load[@]}" --warmup 0 --duration $((PERF_SECONDS + warm + 2)) --cpu 1
    --server-pid "$pid" "127.0.0.1:$port")
echo "# $SCENARIO against $SERVER (pid $pid, CPU 0), $(date -u '+%Y-%m-%d %H:%M:%SZ'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# client: ${client[*]}"
timeout -k 5 $((PERF_SECONDS + warm + 200)) "${client[@]}" >"$OUT/client.txt" 2>&1 &
cpid=$!
bench_pids+=("$cpid")
# the connections are open once the load shows in the server's CPU time
t0=$(bench_cpu_ticks "$pid")
for _ in $(seq 1 600); do
    sleep 0.2
    [ $(($(bench_cpu_ticks "$pid") - t0)) -gt 20 ] && break
done
sleep "$warm"

if [ "$CALLGRIND" = 1 ]; then
    # instrumentation (and so counting) only over the window; the profile
    # is written when corio exits
    callgrind_control -i on "$pid" >/dev/null
    sleep "$PERF_SECONDS"
    callgrind_control -i off "$pid" >/dev/null
    wait "$cpid" || true
    line=$(grep '^RESULT' "$OUT/client.txt") || bench_die "no RESULT from the client: $(cat "$OUT/client.txt")"
    rate=$(bench_result_field "$line" per_s)
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    dump=$OUT/callgrind.out.$pid
    [ -s "$dump" ] || bench_die "no callgrind output $dump"
    callgrind_annotate --inclusive=no --threshold=99 "$dump" >"$OUT/annotate.txt" 2>/dev/null
    ir=$(awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); print $1; exit }' "$OUT/annotate.txt")
    # the exact count of messages (deliveries) in the window: calls of the
    # echo handler (of ws_queue_seg: one per subscriber and message)
    target=echo_message
    [ "$SCENARIO" = echo ] || target=ws_queue_seg
    n=$(python3 - "$dump" "$target" <<'PY'
import re, sys
names, calls, cur = {}, {}, None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3).strip()
        cur = m.group(2) if m.group(1) == "cfn" else None
        continue
    if line.startswith("calls=") and cur is not None:
        calls[cur] = calls.get(cur, 0) + int(line[6:].split()[0])
print(sum(c for i, c in calls.items() if names.get(i) == sys.argv[2]))
PY
)
    awk -v ir="$ir" -v n="$n" -v s="$PERF_SECONDS" -v u="$unit" -v t="$target" -v r="$rate" 'BEGIN {
        printf "callgrind: %.0f instructions in corio (user space) over %d s, %d %ss (calls of %s; client rate %.0f/s): %.0f per %s\n",
            ir, s, n, u, t, r, (n > 0 ? ir / n : -1), u }'
    echo "(start-up and handshakes are outside the window; the kernel is not counted)"
    awk '/file:function/ { on = 1; getline; next } on && NF { print } on && !NF && ++blank > 1 { exit }' \
        "$OUT/annotate.txt" | head -n 30 || true
    echo "# callgrind output: $dump; annotated: $OUT/annotate.txt"
    exit 0
fi

events=cpu-clock,raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_pwait,io_uring:io_uring_submit_req,io_uring:io_uring_complete
perf stat -x, -e "$events" -p "$pid" -o "$OUT/stat.csv" -- sleep "$PERF_SECONDS" &
spid=$!
perf record -q -e cpu-clock -g -p "$pid" -o "$OUT/perf.data" -- sleep "$PERF_SECONDS" >/dev/null 2>&1
wait "$spid"
wait "$cpid" || true
line=$(grep '^RESULT' "$OUT/client.txt") || bench_die "no RESULT from the client: $(cat "$OUT/client.txt")"
rate=$(bench_result_field "$line" per_s)
echo "client: $(sed -n 1,3p "$OUT/client.txt" | tr -s ' ' | tr '\n' ';')"
echo
echo "== per $unit (over the ${PERF_SECONDS} s window at the client's rate of $(printf '%.0f' "$rate") ${unit}s/s)"
awk -F, -v r="$rate" -v s="$PERF_SECONDS" -v u="$unit" '
    $3 == "cpu-clock" || $3 ~ /^(raw_syscalls|syscalls|io_uring):/ {
        v = $1 + 0; n = r * s
        if ($3 == "cpu-clock") printf "  %-40s %10.3f us\n", "CPU (" $3 ")", v * 1000 / n
        else printf "  %-40s %10.4f\n", $3, v / n
    }' "$OUT/stat.csv"
echo
echo "== profile by object (perf record -e cpu-clock, $(perf report -i "$OUT/perf.data" --stdio 2>/dev/null | sed -n 's/^# Samples: \([0-9.]*[KM]*\).*/\1/p' | head -n 1) samples)"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -n 8 || true
echo
echo "== top symbols"
perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -n 30 || true
echo
echo "== user space only (share of all samples)"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | grep -v 'kernel.kallsyms' | head -n 25 || true
echo "# perf data and reports in $OUT"
