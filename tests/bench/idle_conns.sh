#!/usr/bin/env bash
# tests/bench/idle_conns.sh - server RSS per idle keep-alive connection, corio
# and nginx, with tests/bench/idle_conns.py: CONNS connections (default 18000)
# that have each served one GET /plaintext and are now idle.
#
# Target: corio <= 512 bytes per idle connection (an idle connection holds no
# coroutine stack and no buffer); nginx measured 0.51 KiB on this machine.
#
# The servers run one after the other, pinned to CPU 0 (the client on CPU 1),
# each with `ulimit -n` 20000 (the machine's per-process maximum: the server
# needs CONNS + a few descriptors, and so does the client):
#   corio: --config with limits.max_connections 100000 and
#          timeouts.keepalive_ms 600000 (idle connections stay open)
#   nginx: one worker, worker_connections 20000, worker_rlimit_nofile 20000,
#          keepalive_timeout 600s
# RSS is the serving process's VmRSS (nginx: its worker); kernel socket memory
# is not in it, for either server.
#
# Environment: CONNS=18000, SERVERS="corio nginx", CORIO_BIN, NGINX_BIN,
# CORIO_ARGS (extra flags), TIMEOUT=120 (seconds, per server), KEEP_TMP=1.
set -euo pipefail
bench_name=idle_conns
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"

bench_count CONNS 18000
TIMEOUT=${TIMEOUT:-120}
SERVERS=${SERVERS:-corio nginx}
read -r -a servers <<<"${SERVERS//,/ }"
TARGET_BYTES=512

bench_raise_nofile 20000
[ "$(ulimit -n)" -ge $((CONNS + 100)) ] ||
    bench_die "ulimit -n is $(ulimit -n): too low for CONNS=$CONNS (server and client each need CONNS + ~100)"
bench_need_common_tools
bench_need_tools python3=python3
[[ " ${servers[*]} " == *" corio "* ]] && bench_corio_bin
bench_setup

cpu_client=()
[ "$(nproc)" -ge 2 ] && cpu_client=(taskset -c 1)

stop() { # pid
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
}

echo "# idle keep-alive connections, $(date -u '+%Y-%m-%d %H:%M:%SZ'), CONNS=$CONNS, ulimit -n $(ulimit -n)"
declare -A result
for s in "${servers[@]}"; do
    port=$(bench_free_port)
    case $s in
    corio)
        cat >"$bench_tmp/corio.json" <<'EOF'
{
  "limits": { "max_connections": 100000 },
  "timeouts": { "keepalive_ms": 600000 }
}
EOF
        bench_start_corio pid "$port" "$bench_tmp/corio.log" 0 --config "$bench_tmp/corio.json"
        echo "# corio: taskset -c 0 $CORIO_BIN --listen 127.0.0.1:$port --access-log off --log-level warn --config $bench_tmp/corio.json${CORIO_ARGS:+ $CORIO_ARGS}"
        stop_pid=$pid
        ;;
    nginx)
        mkdir -p "$bench_tmp/nginx"
        bench_start_nginx pid "$bench_tmp/nginx" "$port" 0 20000 600s
        echo "# nginx: taskset -c 0 $NGINX_BIN -c $bench_tmp/nginx/nginx.conf (1 worker, pid $pid, worker_connections 20000, keepalive_timeout 600s)"
        stop_pid=$(cat "$bench_tmp/nginx/nginx.pid")
        ;;
    *) bench_die "unknown server '$s' (corio, nginx)" ;;
    esac
    cmd=("${cpu_client[@]}" python3 "$bench_root/tests/bench/idle_conns.py" -n "$CONNS"
        --timeout "$TIMEOUT" "127.0.0.1:$port" "$pid")
    echo "# $s client: ${cmd[*]}"
    out=$bench_tmp/$s.out
    if ! timeout -k 5 $((TIMEOUT + 30)) "${cmd[@]}" >"$out" 2>&1; then
        cat "$out" >&2
        bench_die "idle_conns.py failed against $s"
    fi
    sed "s/^/$s: /" "$out" | grep -v ' RESULT '
    result[$s]=$(sed -n 's/^RESULT .*bytes_per_conn=\([-0-9.]*\).*/\1/p' "$out")
    [ -n "${result[$s]}" ] || bench_die "no RESULT line from idle_conns.py"
    stop "$stop_pid"
done

echo
echo "== server RSS per idle keep-alive connection ($CONNS connections, 1 s after all are idle)"
for s in "${servers[@]}"; do
    printf '%-6s %8s bytes\n' "$s" "${result[$s]}"
done
if [ -n "${result[corio]:-}" ]; then
    verdict=MISSED
    [ "${result[corio]}" -le $TARGET_BYTES ] && verdict=ok
    echo "target: corio <= $TARGET_BYTES bytes per idle connection: $verdict"
    if [ -n "${result[nginx]:-}" ]; then
        awk -v a="${result[corio]}" -v b="${result[nginx]}" \
            'BEGIN { if (b > 0) printf "corio / nginx: x%.2f\n", a / b; else print "corio / nginx: n/a (nginx grew by <= 0)" }'
    fi
fi
