# shellcheck shell=bash
# tests/bench/lib.sh - helpers shared by the benchmark scripts (http_vs_nginx.sh,
# workers_vs_nginx.sh, idle_conns.sh, hash_latency.sh, abandoned_work.sh,
# ws_vs_uws.sh, ws_idle.sh).
# Sourced, never run.
#
# The caller sets bench_name (for messages) before sourcing, and calls
# bench_setup once: it makes a private temp dir ($bench_tmp) and an EXIT trap
# that stops every server started through bench_start_* and every PID added to
# bench_pids, then removes the temp dir (KEEP_TMP=1 keeps it, for debugging).

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench_name=${bench_name:-bench}
bench_pids=()  # processes to stop at exit (servers, load loops)
bench_tmp=

bench_log() { echo "$bench_name: $*" >&2; }
bench_die() {
    echo "$bench_name: error: $*" >&2
    exit 1
}

bench_cleanup() {
    local p
    for p in "${bench_pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${bench_pids[@]}"; do
        # give each up to 3 s to exit, then SIGKILL it
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$p" 2>/dev/null || true
    done
    if [ -n "$bench_tmp" ] && [ -d "$bench_tmp" ]; then
        if [ "${KEEP_TMP:-0}" = 1 ]; then
            bench_log "kept $bench_tmp"
        else
            rm -rf "$bench_tmp"
        fi
    fi
}

bench_setup() {
    bench_tmp=$(mktemp -d "/tmp/corio-${bench_name}.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# Raises this shell's soft open-files limit (inherited by the servers and wrk
# it starts) to $1 (default 20000) or the hard limit, whichever is lower.
bench_raise_nofile() {
    local want=${1:-20000} hard
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
        bench_log "warning: hard open-files limit is $hard (< $want)"
        want=$hard
    fi
    ulimit -n "$want" || bench_die "cannot raise ulimit -n to $want"
}

# bench_need_tools CMD=PKG[|PKG2] ...: installs, with apt-get, the package of
# each command that is missing (PKG2 is tried when PKG cannot be installed).
bench_need_tools() {
    local spec cmd pkgs missing=() sudo=()
    for spec in "$@"; do
        cmd=${spec%%=*}
        pkgs=${spec#*=}
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkgs")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    bench_log "installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        bench_die "apt-get update failed"
    for pkgs in "${missing[@]}"; do
        local ok=0 p
        for p in ${pkgs//|/ }; do
            if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "$p" >/dev/null; then
                ok=1
                break
            fi
        done
        [ $ok = 1 ] || bench_die "cannot install any of: ${pkgs//|/ }"
    done
}

# The usual set: wrk, nginx, curl, taskset, ps/pgrep.
bench_need_common_tools() {
    bench_need_tools wrk=wrk nginx='nginx-light|nginx' curl=curl taskset=util-linux \
        pgrep=procps getconf=libc-bin
    NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
    [ -x "$NGINX_BIN" ] || bench_die "nginx binary not found: $NGINX_BIN (set NGINX_BIN)"
}

# Sets CORIO_BIN: the override if given, else build/server/corio, building
# it (Release) first when it is missing.
bench_corio_bin() {
    if [ -n "${CORIO_BIN:-}" ]; then
        [ -x "$CORIO_BIN" ] || bench_die "CORIO_BIN=$CORIO_BIN is not an executable"
        return 0
    fi
    CORIO_BIN=$bench_root/build/server/corio
    if [ ! -x "$CORIO_BIN" ]; then
        bench_log "building corio (Release) into $bench_root/build"
        # shellcheck source-path=SCRIPTDIR source=../../deploy/deps.sh
        . "$bench_root/deploy/deps.sh"
        corio_install_deps build
        cmake -S "$bench_root" -B "$bench_root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null ||
            bench_die "cmake configure failed"
        cmake --build "$bench_root/build" -j --target corio || bench_die "build failed"
    fi
    local bt
    bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$CORIO_BIN")/../CMakeCache.txt" 2>/dev/null)
    if [ -n "$bt" ] && [ "$bt" != Release ]; then
        bench_log "warning: $CORIO_BIN is a $bt build, not Release: figures are not representative"
    fi
}

# Prints a free TCP port on 127.0.0.1, below the ephemeral range so that the
# client sockets of a run cannot take it.
bench_free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM + i) % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    bench_die "no free port found"
}

# bench_wait_http PID URL LOG [SECONDS]: polls URL until it answers 200 (10 s
# by default). Fails clearly, with the log's tail, when the process exits or
# the time runs out.
bench_wait_http() {
    local pid=$1 url=$2 log=$3 secs=${4:-10} code deadline
    deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            bench_log "process $pid exited before answering $url; its log ($log):"
            tail -n 20 "$log" >&2 2>/dev/null
            bench_die "server did not start"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) || true
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    bench_log "no 200 from $url within ${secs} s (last status: ${code:-none}); log ($log):"
    tail -n 20 "$log" >&2 2>/dev/null
    bench_die "server at $url is not answering GET with 200"
}

# bench_check_keepalive URL NAME: the figures only mean something if the server
# keeps the connection open and answers the expected body; check both.
bench_check_keepalive() {
    local url=$1 who=$2 out body
    out=$(curl -s -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' --max-time 5 \
        "$url" "$url") || bench_die "$who: curl $url failed"
    # expect "200 1" then "200 0": two answers, one connection
    if [ "$(echo "$out" | tr '\n' ' ')" != "200 1 200 0 " ]; then
        bench_die "$who does not keep the connection alive (curl: $(echo "$out" | tr '\n' ' '))" \
            "- two requests on one connection must both get 200; figures would be meaningless"
    fi
    body=$(curl -s --max-time 5 "$url")
    if [ "$body" != "Hello, World!" ]; then
        bench_log "warning: $who answers $url with body '${body:0:40}', not 'Hello, World!'"
    fi
}

# bench_start_corio VAR_PID PORT LOG CPUS [EXTRA ARGS...]: starts corio
# listening on 127.0.0.1:PORT, pinned to CPUS ("" = not pinned), waits for it
# to answer GET /plaintext, and stores its PID in VAR_PID. CORIO_ARGS (env)
# adds flags. Prints the command line to stderr.
bench_start_corio() {
    local -n _pid=$1
    local port=$2 log=$3 cpus=$4 cmd
    shift 4
    cmd=("$CORIO_BIN" --listen "127.0.0.1:$port" --access-log off --log-level warn "$@")
    # shellcheck disable=SC2206 # CORIO_ARGS is meant to be split
    [ -n "${CORIO_ARGS:-}" ] && cmd+=(${CORIO_ARGS})
    [ -n "$cpus" ] && cmd=(taskset -c "$cpus" "${cmd[@]}")
    bench_log "corio: ${cmd[*]}"
    "${cmd[@]}" >"$log" 2>&1 &
    _pid=$!
    bench_pids+=("$_pid")
    bench_wait_http "$_pid" "http://127.0.0.1:$port/plaintext" "$log" 10
    bench_check_keepalive "http://127.0.0.1:$port/plaintext" corio
}

# bench_start_nginx VAR_WORKER_PID DIR PORT CPUS [WORKER_CONNECTIONS [KEEPALIVE_TIMEOUT [WORKERS]]]:
# writes DIR/nginx.conf (one worker, access log off, `return 200 "Hello,
# World!"` at /plaintext), starts nginx pinned to CPUS ("" = not pinned),
# waits for it to answer, and stores the PID of its single worker (the process
# that serves, and whose CPU time and RSS count) in VAR_WORKER_PID.
# WORKERS (default 1) > 1: `worker_processes WORKERS` and `listen ... reuseport`
# (one SO_REUSEPORT socket per worker, as corio --workers N); VAR_WORKER_PID
# then gets the first worker. Either way the master's PID is left in
# bench_nginx_master and the workers' in the array bench_nginx_workers.
bench_nginx_master=
bench_nginx_workers=()
bench_start_nginx() {
    local -n _wpid=$1
    local dir=$2 port=$3 cpus=$4 wconns=${5:-4096} kat=${6:-75s} nworkers=${7:-1} master cmd i
    local reuseport=
    [[ "$nworkers" =~ ^[1-9][0-9]*$ ]] || bench_die "bench_start_nginx: bad worker count '$nworkers'"
    [ "$nworkers" -gt 1 ] && reuseport=" reuseport"
    mkdir -p "$dir/body"
    cat >"$dir/nginx.conf" <<EOF
# written by tests/bench ($bench_name)
daemon off;
master_process on;
worker_processes $nworkers;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $wconns;
}
http {
    access_log off;
    client_body_temp_path $dir/body;
    keepalive_requests 1000000;
    keepalive_timeout $kat;
    server {
        listen 127.0.0.1:$port$reuseport;
        location /plaintext {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
EOF
    cmd=("$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log")
    [ -n "$cpus" ] && cmd=(taskset -c "$cpus" "${cmd[@]}")
    bench_log "nginx: ${cmd[*]}"
    "${cmd[@]}" >"$dir/stderr.log" 2>&1 &
    master=$!
    bench_pids+=("$master")
    bench_wait_http "$master" "http://127.0.0.1:$port/plaintext" "$dir/error.log" 10
    _wpid=
    # shellcheck disable=SC2034 # read by the calling script
    bench_nginx_master=$master
    bench_nginx_workers=()
    for i in $(seq 1 50); do
        mapfile -t bench_nginx_workers < <(pgrep -P "$master" | sort -n)
        [ ${#bench_nginx_workers[@]} -ge "$nworkers" ] && break
        sleep 0.1
    done
    [ ${#bench_nginx_workers[@]} -gt 0 ] || bench_die "cannot find nginx's worker process (master $master)"
    [ ${#bench_nginx_workers[@]} -eq "$nworkers" ] ||
        bench_die "nginx has ${#bench_nginx_workers[@]} workers, not $nworkers (master $master)"
    _wpid=${bench_nginx_workers[0]}
    bench_check_keepalive "http://127.0.0.1:$port/plaintext" nginx
}

# Prints utime+stime of PID (all its threads), in clock ticks.
bench_cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || bench_die "process $1 is gone"
    # drop "pid (comm) " (comm may hold spaces); utime/stime are fields 14/15
    s=${s##*) }
    echo "$s" | awk '{ print $12 + $13 }'
}

# bench_cpu_ticks_sum PID...: utime+stime summed over the PIDs (each with all
# its threads), in clock ticks; e.g. nginx's master and its workers.
bench_cpu_ticks_sum() {
    local p x t=0
    for p in "$@"; do
        x=$(bench_cpu_ticks "$p") || return 1
        t=$((t + x))
    done
    echo "$t"
}

# bench_task_ticks PID...: one line "TID TICKS" (utime+stime) for every thread
# of every PID (from /proc/PID/task/TID/stat), to see how a server's CPU time
# splits between its threads or processes. Threads that exit in between are
# skipped.
bench_task_ticks() {
    local p f s a
    for p in "$@"; do
        for f in /proc/"$p"/task/*/stat; do
            s=$(<"$f") 2>/dev/null || continue
            read -r -a a <<<"${s##*) }"
            f=${f%/stat}
            echo "${f##*/} $((a[11] + a[12]))"
        done
    done
}

# Prints the busy clock ticks of the whole machine (user, nice, system, irq,
# softirq, steal: everything but idle and iowait), from /proc/stat.
bench_busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# bench_children_secs FILE: stores the user+system seconds of this shell's
# finished children (bash's `times`) in FILE. Must run in the calling shell,
# not in $(...): a subshell's `times` does not see its parent's children.
bench_children_secs() {
    times >"$1.times"
    awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }' \
        "$1.times" >"$1"
}

# Prints VmRSS of PID in kB.
bench_rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || bench_die "process $1 is gone"
}

# bench_args "$@": answers -h/--help with the script's header comment (up to
# its `set -euo` line) and refuses arguments: benchmarks are configured by
# environment variables.
bench_args() {
    if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
    fi
    [ $# -eq 0 ] || bench_die "no arguments expected (configure with environment variables; see --help)"
}

# bench_count NAME DEFAULT [MIN]: NAME defaults to DEFAULT and must be an
# integer >= MIN (1 unless given).
bench_count() {
    local -n _n=$1
    _n=${_n:-$2}
    if ! [[ "$_n" =~ ^[0-9]+$ ]] || [ "$_n" -lt "${3:-1}" ]; then
        bench_die "bad $1 '$_n'"
    fi
}

# Duration normalised to whole seconds: "10", "10s" -> 10.
bench_seconds() {
    local d=${1%s}
    if ! [[ "$d" =~ ^[0-9]+$ ]] || [ "$d" -eq 0 ]; then
        bench_die "bad duration '$1' (want seconds, e.g. 10 or 10s)"
    fi
    echo "$d"
}

# bench_wrk_parse FILE: prints "requests rps p99_ms p50_ms errors" from wrk's
# --latency output (errors = socket errors + non-2xx/3xx responses), or fails.
# The parsing is the load kit's (deploy/wrk/report.awk).
bench_wrk_parse() {
    local r
    r=$(awk -f "$bench_root/deploy/wrk/report.awk" "$1") || return 1
    awk '$4 >= 0 { printf "%d %.2f %.3f %.3f %d\n", $1, $2, $4, $3, $5; ok = 1 } END { exit !ok }' <<<"$r"
}

# Median of the numbers on stdin (one per line).
bench_median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ---- WebSocket benchmarks (ws_vs_uws.sh, ws_idle.sh) ----------------------------

# Sets BENCH_BIN: the override if given, else build/tests/corio-bench, building
# it (Release, with the tests' directory, which needs Debian's `check`) first
# when it is missing.
bench_bench_bin() {
    if [ -n "${BENCH_BIN:-}" ]; then
        [ -x "$BENCH_BIN" ] || bench_die "BENCH_BIN=$BENCH_BIN is not an executable"
        return 0
    fi
    BENCH_BIN=$bench_root/build/tests/corio-bench
    if [ ! -x "$BENCH_BIN" ]; then
        bench_log "building corio-bench (Release) into $bench_root/build"
        # shellcheck source-path=SCRIPTDIR source=../../deploy/deps.sh
        . "$bench_root/deploy/deps.sh"
        corio_deps_build+=(check)
        corio_install_deps build
        cmake -S "$bench_root" -B "$bench_root/build" -DCMAKE_BUILD_TYPE=Release \
            -DCORIO_BUILD_TESTS=ON >/dev/null || bench_die "cmake configure failed"
        cmake --build "$bench_root/build" -j --target corio-bench corio || bench_die "build failed"
    fi
}

# bench_npm_install DIR PKG@VERSION...: installs npm packages into DIR
# (`npm install --prefix DIR`, so DIR/node_modules; never in the source
# tree) unless DIR/.bench-installed already lists exactly these packages.
bench_npm_install() {
    local dir=$1
    shift
    local want="$*"
    if [ -f "$dir/.bench-installed" ] && [ "$(cat "$dir/.bench-installed")" = "$want" ] &&
        [ -d "$dir/node_modules" ]; then
        return 0
    fi
    bench_need_tools node=nodejs npm=npm
    mkdir -p "$dir"
    bench_log "npm install --prefix $dir $want"
    timeout 600 npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
        "$@" >"$dir/npm.log" 2>&1 || {
        tail -n 20 "$dir/npm.log" >&2
        bench_die "npm install failed (log: $dir/npm.log)"
    }
    echo "$want" >"$dir/.bench-installed"
}

# bench_start_bg VAR_PID LOG CPUS CMD...: starts CMD in the background,
# pinned to CPUS ("" = not pinned), output to LOG, stopped at exit; stores its
# PID in VAR_PID. Prints the command line to stderr.
bench_start_bg() {
    local -n _bpid=$1
    local log=$2 cpus=$3
    shift 3
    local cmd=("$@")
    [ -n "$cpus" ] && cmd=(taskset -c "$cpus" "${cmd[@]}")
    bench_log "start: ${cmd[*]}"
    "${cmd[@]}" >"$log" 2>&1 &
    _bpid=$!
    bench_pids+=("$_bpid")
}

# bench_wait_line PID LOG REGEX [SECONDS]: waits until LOG has a line
# matching REGEX (10 s by default); fails with the log's tail when PID exits
# or the time runs out.
bench_wait_line() {
    local pid=$1 log=$2 re=$3 secs=${4:-10} deadline
    deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        grep -Eq "$re" "$log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            bench_log "process $pid exited; its log ($log):"
            tail -n 20 "$log" >&2 2>/dev/null
            bench_die "server did not start"
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 2>/dev/null
    bench_die "no line matching '$re' in $log within $secs s"
}

# bench_result_field LINE KEY: the value of KEY=... in a RESULT line.
bench_result_field() {
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# bench_verdict MISSED NOISY: the summary's last line: all targets met, or how
# many were missed, and whether noisy runs make it inconclusive.
bench_verdict() {
    local caveat=
    [ "$2" -gt 0 ] && caveat=" (but $2 noisy runs: not conclusive)"
    if [ "$1" -eq 0 ]; then
        echo "all targets met$caveat"
    else
        echo "targets missed: $1$caveat"
    fi
}

# bench_raw_and_exit RESULTS MISSED COLUMNS: prints the raw rows under their
# column names, then exits (1 with STRICT=1 when a target was missed).
bench_raw_and_exit() {
    echo "# raw: $3"
    sed 's/^/#   /' "$1"
    [ "${STRICT:-0}" = 1 ] && [ "$2" -gt 0 ] && exit 1
    exit 0
}

# bench_fmt_ms VALUE: milliseconds as "1.234 ms", or n/a (wrk 4.1 prints
# 0.00us as a percentile with pipelining, see README).
bench_fmt_ms() {
    awk -v v="$1" 'BEGIN { if (v != "nan" && v + 0 > 0) printf "%.3f ms", v; else print "n/a" }'
}

# bench_warmup NAME WRK-COMMAND...: runs a warm-up load, bounded in time by
# WARMUP + 30 s; dies naming NAME if wrk fails.
bench_warmup() {
    local name=$1
    shift
    timeout -k 5 $((WARMUP + 30)) "$@" >/dev/null 2>&1 || bench_die "warm-up of $name failed: $*"
}

# Summaries of a results table (tab-separated: scenario, server, run, then
# the figures), shared by the wrk comparisons.
# bench_res_median FILE SCENARIO SERVER COLUMN: the median over the runs,
# n/a (0) values left out.
bench_res_median() {
    awk -F'\t' -v sc="$2" -v sv="$3" -v c="$4" '$1 == sc && $2 == sv && $c > 0 { print $c }' \
        "$1" | bench_median
}
# bench_res_sum FILE SCENARIO SERVER COLUMN: the column summed over the runs.
bench_res_sum() {
    awk -F'\t' -v sc="$2" -v sv="$3" -v c="$4" '$1 == sc && $2 == sv { e += $c } END { print e + 0 }' "$1"
}
# bench_fx RATIO: "x1.234", or n/a.
bench_fx() {
    if [ "$1" = nan ]; then echo n/a; else echo "x$1"; fi
}
# bench_ratio A B: A/B with 3 decimals, or nan.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b <= 0) print "nan"; else printf "%.3f\n", a / b }'
}
