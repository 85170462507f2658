#!/usr/bin/env bash
# tests/bench/workers_vs_nginx.sh - wrk against corio --workers 1 and 2 and
# against nginx (Debian's) with worker_processes 1 and 2, alternating in one run.
#
# The four servers run at once, each on its own port, none pinned: with 2
# CPUs, 2 workers need both, and wrk (2 threads) shares them; pinning would
# only hide that. corio: --workers N --access-log off --log-level warn (N loops
# on N threads, SO_REUSEPORT sockets); nginx: worker_processes N, access log
# off, and for N > 1 `listen ... reuseport` (one SO_REUSEPORT socket per
# worker, as corio; accept_mutex is off by default since nginx 1.11.3). For
# every scenario the runs alternate corio-1, corio-2, nginx-1, nginx-2, ...
# (REPEAT each); each is preceded by a short warm-up and prints requests/s,
# p50/p99 latency, the server's CPU time per request (utime+stime summed over
# all its processes, each with all its threads: corio's one process; nginx's
# master and workers; from /proc/PID/stat before and after the run, divided by
# the requests wrk completed), the server's CPU use in % of one CPU and how it
# split between its threads or processes, and wrk's own CPU (bash's `times`).
# Then a summary: medians, corio/nginx ratios at the same worker count and
# each server's 2-worker/1-worker speed-up. A benchmark, not a test: never
# registered with ctest; every load run is bounded by -d and `timeout`.
#
# On a 2-CPU machine wrk takes a large share of the CPUs: requests/s then
# understates what 2 workers can do, and CPU per request (with the latency
# percentiles) is the fairer figure. The summary says so.
#
# Environment:
#   DURATION=5       seconds per measured run
#   WARMUP=1         seconds of warm-up load before each run (0 = none)
#   REPEAT=5         runs per server and scenario
#   CONNS=256        wrk connections (-c)
#   THREADS=2        wrk threads (-t)
#   SCENARIOS=plain  plain (GET /plaintext, keep-alive) and/or pipeline16
#                    (deploy/wrk/pipeline.lua, 16 requests per write); space or comma separated
#   SERVERS="corio-1 corio-2 nginx-1 nginx-2"   corio-N / nginx-N, any N >= 1
#   CORIO_BIN=...    default build/server/corio (built, Release, if missing)
#   NGINX_BIN=...    default: nginx on PATH
#   CORIO_ARGS=...   extra flags for corio
#   NOISE_PCT=10     flag runs where other processes used more than this % of a CPU
#   STRICT=1         exit 1 when a corio server had errors
#   KEEP_TMP=1       keep the temp dir (nginx.conf, logs, raw wrk output)
set -euo pipefail
bench_name=workers_vs_nginx
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"

DURATION=$(bench_seconds "${DURATION:-5}")
bench_count WARMUP 1 0
bench_count REPEAT 5
bench_count CONNS 256
bench_count THREADS 2
[ "$CONNS" -ge "$THREADS" ] || bench_die "CONNS ($CONNS) must be >= THREADS ($THREADS)"
SCENARIOS=${SCENARIOS:-plain}
SERVERS=${SERVERS:-corio-1 corio-2 nginx-1 nginx-2}
NOISE_PCT=${NOISE_PCT:-10}
read -r -a scenarios <<<"${SCENARIOS//,/ }"
read -r -a servers <<<"${SERVERS//,/ }"
PIPELINE_DEPTH=16
pipeline_lua=$bench_root/deploy/wrk/pipeline.lua

for sc in "${scenarios[@]}"; do
    case $sc in plain | pipeline16) ;; *) bench_die "unknown scenario '$sc' (plain, pipeline16)" ;; esac
done
[ ${#servers[@]} -gt 0 ] || bench_die "SERVERS is empty"
declare -A seen
need_corio=0
for s in "${servers[@]}"; do
    [[ "$s" =~ ^(corio|nginx)-([1-9][0-9]*)$ ]] ||
        bench_die "unknown server '$s' (corio-N or nginx-N, e.g. corio-1 corio-2 nginx-1 nginx-2)"
    [ -z "${seen[$s]:-}" ] || bench_die "server '$s' listed twice"
    seen[$s]=1
    [ "${BASH_REMATCH[1]}" = corio ] && need_corio=1
done

bench_raise_nofile 20000
bench_need_common_tools
[ $need_corio = 1 ] && bench_corio_bin
bench_setup
hz=$(getconf CLK_TCK)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A port pid pids desc
for s in "${servers[@]}"; do
    kind=${s%-*}
    n=${s##*-}
    port[$s]=$(bench_free_port)
    case $kind in
    corio)
        bench_start_corio "pid[$s]" "${port[$s]}" "$bench_tmp/$s.log" "" --workers "$n"
        pids[$s]=${pid[$s]}
        desc[$s]="$CORIO_BIN --listen 127.0.0.1:${port[$s]} --access-log off --log-level warn --workers $n${CORIO_ARGS:+ $CORIO_ARGS} (pid ${pid[$s]}, $(awk '/^Threads:/ { print $2 }' "/proc/${pid[$s]}/status") threads)"
        ;;
    nginx)
        mkdir -p "$bench_tmp/$s"
        wconns=$((CONNS + 64 > 4096 ? CONNS + 64 : 4096))
        bench_start_nginx "pid[$s]" "$bench_tmp/$s" "${port[$s]}" "" "$wconns" 75s "$n"
        pids[$s]="$bench_nginx_master ${bench_nginx_workers[*]}"
        rp=
        [ "$n" -gt 1 ] && rp=", listen reuseport"
        desc[$s]="$NGINX_BIN -p $bench_tmp/$s -c $bench_tmp/$s/nginx.conf: worker_processes $n$rp, worker_connections $wconns (master $bench_nginx_master, workers ${bench_nginx_workers[*]})"
        ;;
    esac
done

wrk_cmd() { # scenario server [duration] -> the wrk command, one word per line
    local sc=$1 sv=$2 d=${3:-$DURATION}
    printf '%s\n' wrk "-t$THREADS" "-c$CONNS" "-d${d}s" --latency
    [ "$sc" = pipeline16 ] && printf '%s\n' -s "$pipeline_lua"
    printf '%s\n' "http://127.0.0.1:${port[$sv]}/plaintext"
    [ "$sc" = pipeline16 ] && printf '%s\n' -- "$PIPELINE_DEPTH"
    return 0
}

alive() { # server: are all its processes still there?
    local p
    for p in ${pids[$1]}; do
        kill -0 "$p" 2>/dev/null || return 1
    done
}

died() { # server: report, with its log, and stop
    local log=$bench_tmp/$1.log
    [ "${1%-*}" = nginx ] && log=$bench_tmp/$1/error.log
    bench_log "$1 lost a process during the run (pids ${pids[$1]}); its log ($log):"
    tail -n 30 "$log" >&2 2>/dev/null || true
    bench_die "$1 died during the run"
}

echo "# workers: corio --workers N vs nginx worker_processes N, $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# command: DURATION=$DURATION WARMUP=$WARMUP REPEAT=$REPEAT CONNS=$CONNS THREADS=$THREADS SCENARIOS='${scenarios[*]}' SERVERS='${servers[*]}' $0"
echo "# load average at start: $load_at_start; nothing pinned"
for s in "${servers[@]}"; do
    echo "# $s: ${desc[$s]}"
done
echo "# nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'); wrk: $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }'); CPU ticks: $hz/s"


results=$bench_tmp/results.tsv
: >"$results"
for sc in "${scenarios[@]}"; do
    for s in "${servers[@]}"; do
        echo "# $sc $s: $(wrk_cmd "$sc" "$s" | tr '\n' ' ')"
    done
    for ((i = 1; i <= REPEAT; i++)); do
        for s in "${servers[@]}"; do
            mapfile -t cmd < <(wrk_cmd "$sc" "$s")
            if [ "$WARMUP" -gt 0 ]; then
                mapfile -t wcmd < <(wrk_cmd "$sc" "$s" "$WARMUP")
                bench_warmup "$s" "${wcmd[@]}"
                alive "$s" || died "$s"
            fi
            out=$bench_tmp/wrk-$sc-$s-$i.txt
            # shellcheck disable=SC2086 # pids[$s] is a list
            bench_task_ticks ${pids[$s]} >"$bench_tmp/tasks0"
            busy0=$(bench_busy_ticks)
            # shellcheck disable=SC2086
            t0=$(bench_cpu_ticks_sum ${pids[$s]})
            bench_children_secs "$bench_tmp/ch0"
            w0=$(date +%s.%N)
            if ! timeout -k 5 $((DURATION + 30)) "${cmd[@]}" >"$out" 2>&1; then
                cat "$out" >&2
                alive "$s" || died "$s"
                bench_die "wrk failed against $s: ${cmd[*]}"
            fi
            w1=$(date +%s.%N)
            bench_children_secs "$bench_tmp/ch1"
            alive "$s" || died "$s"
            # shellcheck disable=SC2086
            t1=$(bench_cpu_ticks_sum ${pids[$s]})
            busy1=$(bench_busy_ticks)
            # shellcheck disable=SC2086
            bench_task_ticks ${pids[$s]} >"$bench_tmp/tasks1"
            if ! parsed=$(bench_wrk_parse "$out"); then
                cat "$out" >&2
                bench_die "cannot parse wrk's output (above)"
            fi
            read -r req rps p99 p50 err <<<"$parsed"
            [ "$req" -gt 0 ] || bench_die "$s served no requests in $sc run $i"
            # server: CPU s, us/req, % of one CPU; wrk: us/req, % of one CPU;
            # noise: CPU the machine spent on anything but the server and wrk,
            # in % of one CPU over the run
            read -r cpus cpuus cpupct wrkus wrkpct noise < <(awk -v t=$((t1 - t0)) -v hz="$hz" -v r="$req" \
                -v b=$((busy1 - busy0)) -v c0="$(cat "$bench_tmp/ch0")" -v c1="$(cat "$bench_tmp/ch1")" \
                -v w0="$w0" -v w1="$w1" 'BEGIN {
                    wall = w1 - w0; c = c1 - c0
                    o = b / hz - t / hz - c; if (o < 0) o = 0
                    printf "%.2f %.3f %.0f %.3f %.0f %.0f\n", t / hz, t / hz * 1e6 / r, t / hz / wall * 100,
                        c * 1e6 / r, c / wall * 100, o / wall * 100 }')
            # how the server's CPU split between its threads/processes: the
            # shares (%) of those with at least 3%, largest first
            split=$(awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > 0) { v[$1] = d; s += d } }
                END { n = 0; for (k in v) if (v[k] * 100 >= 3 * s) x[++n] = v[k]
                      if (n == 0) { print "-"; exit }
                      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] > x[i]) { y = x[i]; x[i] = x[j]; x[j] = y }
                      o = ""; for (i = 1; i <= n; i++) o = o (i > 1 ? "/" : "") sprintf("%.0f", x[i] * 100 / s)
                      print o }' "$bench_tmp/tasks0" "$bench_tmp/tasks1")
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$s" "$i" "$rps" "$p99" "$p50" \
                "$cpuus" "$cpupct" "$wrkus" "$wrkpct" "$req" "$err" "$noise" "$split" >>"$results"
            note=
            if [ "$err" -gt 0 ]; then # which ones, in wrk's words
                note="$note, $err ERRORS: $(grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^ *//' | paste -sd ';' -)"
            fi
            [ "$noise" -gt "$NOISE_PCT" ] && note="$note, NOISY: other processes used ${noise}% of a CPU"
            printf '%-10s %-7s run %d/%d: %9.0f req/s  p50 %9s  p99 %9s  server %7.3f us/req %4d%% CPU (split %s)  wrk %6.3f us/req %4d%% CPU  (%d requests, %s s server CPU%s)\n' \
                "$sc" "$s" "$i" "$REPEAT" "$rps" "$(bench_fmt_ms "$p50")" "$(bench_fmt_ms "$p99")" "$cpuus" "$cpupct" "$split" \
                "$wrkus" "$wrkpct" "$req" "$cpus" "$note"
        done
    done
done

med() { bench_res_median "$results" "$@"; }     # scenario server column
errs() { bench_res_sum "$results" "$1" "$2" 12; } # scenario server: errors over the runs
fx() { bench_fx "$@"; }
ratio() { bench_ratio "$@"; }
has() { [ -n "${seen[$1]:-}" ]; }

echo
echo "== medians of $REPEAT runs (${DURATION} s each; wrk -t$THREADS -c$CONNS)"
printf '%-10s %-7s %10s %10s %10s %11s %7s %9s %7s %6s\n' scenario server req/s p50 p99 "srv us/req" "srv CPU" \
    "wrk us/req" "wrk CPU" errors
for sc in "${scenarios[@]}"; do
    for s in "${servers[@]}"; do
        printf '%-10s %-7s %10.0f %10s %10s %11.3f %6.0f%% %10.3f %6.0f%% %6d\n' "$sc" "$s" "$(med "$sc" "$s" 4)" \
            "$(bench_fmt_ms "$(med "$sc" "$s" 6)")" "$(bench_fmt_ms "$(med "$sc" "$s" 5)")" "$(med "$sc" "$s" 7)" \
            "$(med "$sc" "$s" 8)" "$(med "$sc" "$s" 9)" "$(med "$sc" "$s" 10)" "$(errs "$sc" "$s")"
    done
done
echo "(srv/wrk CPU: % of one CPU over the run, $(nproc) CPUs in all; srv us/req: the server's CPU time per request)"
noisy=$(awk -F'\t' -v n="$NOISE_PCT" '$13 > n' "$results" | wc -l)
if [ "$noisy" -gt 0 ]; then
    echo "warning: other processes took > ${NOISE_PCT}% of a CPU during $noisy of the runs: figures are unreliable;"
    echo "         run on an otherwise idle machine"
fi

# corio-N / nginx-N for every N both have
pairs=()
for s in "${servers[@]}"; do
    [ "${s%-*}" = corio ] && has "nginx-${s##*-}" && pairs+=("${s##*-}")
done
if [ ${#pairs[@]} -gt 0 ]; then
    echo
    echo "== corio / nginx at the same worker count, ratios of the medians (< 1: corio lower)"
    printf '%-10s %-17s %8s %8s %8s %8s\n' scenario pair "CPU/req" req/s p50 p99
    for sc in "${scenarios[@]}"; do
        for n in "${pairs[@]}"; do
            c=corio-$n x=nginx-$n
            printf '%-10s %-17s %8s %8s %8s %8s\n' "$sc" "$c/$x" \
                "$(fx "$(ratio "$(med "$sc" "$c" 7)" "$(med "$sc" "$x" 7)")")" \
                "$(fx "$(ratio "$(med "$sc" "$c" 4)" "$(med "$sc" "$x" 4)")")" \
                "$(fx "$(ratio "$(med "$sc" "$c" 6)" "$(med "$sc" "$x" 6)")")" \
                "$(fx "$(ratio "$(med "$sc" "$c" 5)" "$(med "$sc" "$x" 5)")")"
        done
    done
fi

# KIND-N / KIND-1 for every N > 1 with KIND-1 there too
ups=()
for s in "${servers[@]}"; do
    [ "${s##*-}" -gt 1 ] && has "${s%-*}-1" && ups+=("$s")
done
if [ ${#ups[@]} -gt 0 ]; then
    echo
    echo "== speed-up with more workers: N-worker / 1-worker, ratios of the medians"
    printf '%-10s %-17s %8s %8s %8s %8s\n' scenario server req/s "CPU/req" p50 p99
    for sc in "${scenarios[@]}"; do
        for s in "${ups[@]}"; do
            b=${s%-*}-1
            printf '%-10s %-17s %8s %8s %8s %8s\n' "$sc" "$s/$b" \
                "$(fx "$(ratio "$(med "$sc" "$s" 4)" "$(med "$sc" "$b" 4)")")" \
                "$(fx "$(ratio "$(med "$sc" "$s" 7)" "$(med "$sc" "$b" 7)")")" \
                "$(fx "$(ratio "$(med "$sc" "$s" 6)" "$(med "$sc" "$b" 6)")")" \
                "$(fx "$(ratio "$(med "$sc" "$s" 5)" "$(med "$sc" "$b" 5)")")"
        done
    done
fi

wrk_share=$(awk -F'\t' '{ print $10 }' "$results" | bench_median)
srv_share=$(awk -F'\t' '{ print $8 }' "$results" | bench_median)
echo
echo "note: this machine has $(nproc) CPUs and wrk ($THREADS threads, not pinned) runs on them alongside the"
echo "      server: over all runs wrk used a median ${wrk_share}% of one CPU (the servers ${srv_share}%). The load"
echo "      generator is part of the ceiling, so requests/s understates what 2 workers can do; server CPU"
echo "      per request is the fairer figure, and p50/p99 (--latency) show the queueing that remains."

missed=0
for s in "${servers[@]}"; do
    [ "${s%-*}" = corio ] || continue
    e=0
    for sc in "${scenarios[@]}"; do e=$((e + $(errs "$sc" "$s"))); done
    if [ "$e" -gt 0 ]; then
        echo "error: $s had $e errors (socket errors or non-2xx answers; raw wrk output: KEEP_TMP=1)"
        missed=$((missed + 1))
    fi
    if [ -s "$bench_tmp/$s.log" ]; then
        echo "warning: $s logged $(wc -l <"$bench_tmp/$s.log") lines at warn level or above; the last ones:"
        tail -n 5 "$bench_tmp/$s.log" | sed 's/^/    /'
    fi
done
for s in "${servers[@]}"; do
    [ "${s%-*}" = nginx ] || continue
    e=0
    for sc in "${scenarios[@]}"; do e=$((e + $(errs "$sc" "$s"))); done
    [ "$e" -gt 0 ] && echo "warning: $s had $e errors: its figures are suspect"
done
bench_raw_and_exit "$results" "$missed" \
    "scenario server run req/s p99_ms p50_ms srv_us_per_req srv_cpu_pct wrk_us_per_req wrk_cpu_pct requests errors noise_pct split_pct"
