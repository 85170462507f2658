#!/usr/bin/env bash
# tests/bench/http_vs_nginx.sh - wrk against corio and against nginx (Debian's,
# one worker, `return 200 "Hello, World!"`), alternating in one run.
#
# Each server is pinned to CPU 0 and wrk to CPU 1. For every scenario the runs
# alternate corio, nginx, corio, nginx, ... (REPEAT each); every run is preceded
# by a short warm-up and prints requests/s, p99 latency and the server's CPU
# time per request (utime+stime from /proc/PID/stat before and after the run,
# divided by the requests wrk completed). Then a summary of medians, the
# corio/nginx ratios and whether each target holds. A benchmark, not a test:
# never registered with ctest; every load run is bounded by -d and `timeout`.
#
# Environment:
#   DURATION=10      seconds per measured run
#   WARMUP=1         seconds of warm-up load before each run (0 = none)
#   REPEAT=3         runs per server and scenario
#   SCENARIOS="plain64 plain1000 pipeline16"   subset, space or comma separated
#   SERVERS="corio nginx"   one of them alone for debugging (no ratios then)
#   CORIO_BIN=...    default build/server/corio (built, Release, if missing)
#   NGINX_BIN=...    default: nginx on PATH
#   CORIO_ARGS=...   extra flags for corio
#   STRICT=1         exit 1 when a target is missed
#   KEEP_TMP=1       keep the temp dir (nginx.conf, logs, raw wrk output)
set -euo pipefail
bench_name=http_vs_nginx
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bench_args "$@"

DURATION=$(bench_seconds "${DURATION:-10}")
bench_count WARMUP 1 0
bench_count REPEAT 3
SCENARIOS=${SCENARIOS:-plain64 plain1000 pipeline16}
SERVERS=${SERVERS:-corio nginx}
read -r -a scenarios <<<"${SCENARIOS//,/ }"
read -r -a servers <<<"${SERVERS//,/ }"
PIPELINE_DEPTH=16
pipeline_lua=$bench_root/deploy/wrk/pipeline.lua

# scenario -> connections, wrk script args
scenario_conns() {
    case $1 in
    plain64) echo 64 ;;
    plain1000) echo 1000 ;;
    pipeline16) echo 64 ;;
    *) bench_die "unknown scenario '$1' (plain64, plain1000, pipeline16)" ;;
    esac
}
for s in "${scenarios[@]}"; do scenario_conns "$s" >/dev/null; done
for s in "${servers[@]}"; do
    case $s in corio | nginx) ;; *) bench_die "unknown server '$s' (corio, nginx)" ;; esac
done
[ "$(nproc)" -ge 2 ] || bench_die "needs 2 CPUs (server on CPU 0, wrk on CPU 1)"

bench_raise_nofile 20000
bench_need_common_tools
[[ " ${servers[*]} " == *" corio "* ]] && bench_corio_bin
bench_setup
hz=$(getconf CLK_TCK)

declare -A pid port
for s in "${servers[@]}"; do
    port[$s]=$(bench_free_port)
    case $s in
    corio) bench_start_corio "pid[corio]" "${port[corio]}" "$bench_tmp/corio.log" 0 ;;
    nginx)
        mkdir -p "$bench_tmp/nginx"
        bench_start_nginx "pid[nginx]" "$bench_tmp/nginx" "${port[nginx]}" 0
        ;;
    esac
done

wrk_cmd() { # scenario server [duration] -> the wrk command, one word per line
    local sc=$1 sv=$2 d=${3:-$DURATION}
    printf '%s\n' taskset -c 1 wrk -t1 "-c$(scenario_conns "$sc")" "-d${d}s" --latency
    [ "$sc" = pipeline16 ] && printf '%s\n' -s "$pipeline_lua"
    printf '%s\n' "http://127.0.0.1:${port[$sv]}/plaintext"
    [ "$sc" = pipeline16 ] && printf '%s\n' -- "$PIPELINE_DEPTH"
    return 0
}

echo "# corio vs nginx, $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# command: DURATION=$DURATION WARMUP=$WARMUP REPEAT=$REPEAT SCENARIOS='${scenarios[*]}' SERVERS='${servers[*]}' $0"
[ -n "${pid[corio]:-}" ] && echo "# corio: taskset -c 0 $CORIO_BIN --listen 127.0.0.1:${port[corio]} --access-log off --log-level warn${CORIO_ARGS:+ $CORIO_ARGS} (pid ${pid[corio]})"
[ -n "${pid[nginx]:-}" ] && echo "# nginx: taskset -c 0 $NGINX_BIN $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), 1 worker (pid ${pid[nginx]}), conf $bench_tmp/nginx/nginx.conf"
echo "# wrk: $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }'); CPU ticks: $hz/s"

NOISE_PCT=${NOISE_PCT:-10}

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
            fi
            out=$bench_tmp/wrk-$sc-$s-$i.txt
            busy0=$(bench_busy_ticks)
            t0=$(bench_cpu_ticks "${pid[$s]}")
            bench_children_secs "$bench_tmp/ch0"
            w0=$(date +%s.%N)
            if ! timeout -k 5 $((DURATION + 30)) "${cmd[@]}" >"$out" 2>&1; then
                cat "$out" >&2
                bench_die "wrk failed against $s: ${cmd[*]}"
            fi
            w1=$(date +%s.%N)
            bench_children_secs "$bench_tmp/ch1"
            t1=$(bench_cpu_ticks "${pid[$s]}")
            busy1=$(bench_busy_ticks)
            kill -0 "${pid[$s]}" 2>/dev/null || bench_die "$s died during the run"
            if ! parsed=$(bench_wrk_parse "$out"); then
                cat "$out" >&2
                bench_die "cannot parse wrk's output (above)"
            fi
            read -r req rps p99 p50 err <<<"$parsed"
            [ "$req" -gt 0 ] || bench_die "$s served no requests in $sc run $i"
            # server CPU per request; and "noise": CPU the machine spent on
            # anything but the server and wrk, in % of one CPU over the run
            read -r cpus cpuus noise < <(awk -v t=$((t1 - t0)) -v hz="$hz" -v r="$req" \
                -v b=$((busy1 - busy0)) -v c0="$(cat "$bench_tmp/ch0")" -v c1="$(cat "$bench_tmp/ch1")" \
                -v w0="$w0" -v w1="$w1" 'BEGIN {
                    o = b / hz - t / hz - (c1 - c0); if (o < 0) o = 0
                    printf "%.2f %.3f %.0f\n", t / hz, t / hz * 1e6 / r, o / (w1 - w0) * 100 }')
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$s" "$i" "$rps" "$p99" "$p50" \
                "$cpuus" "$req" "$err" "$noise" >>"$results"
            note=
            [ "$err" -gt 0 ] && note="$note, $err ERRORS (socket errors or non-2xx)"
            [ "$noise" -gt "$NOISE_PCT" ] && note="$note, NOISY: other processes used ${noise}% of a CPU"
            printf '%-10s %-5s run %d/%d: %10.0f req/s  p99 %9s  p50 %9s  CPU %7.3f us/req  (%d requests, %s s CPU%s)\n' \
                "$sc" "$s" "$i" "$REPEAT" "$rps" "$(bench_fmt_ms "$p99")" "$(bench_fmt_ms "$p50")" "$cpuus" "$req" \
                "$cpus" "$note"
        done
    done
done

med() { bench_res_median "$results" "$@"; }     # scenario server column
errs() { bench_res_sum "$results" "$1" "$2" 9; } # scenario server: errors over the runs
fx() { bench_fx "$@"; }
ratio() { bench_ratio "$@"; }

echo
echo "== medians of $REPEAT runs (${DURATION} s each)"
printf '%-10s %-5s %12s %12s %12s %12s %7s\n' scenario server req/s p99 p50 "CPU us/req" errors
for sc in "${scenarios[@]}"; do
    for s in "${servers[@]}"; do
        printf '%-10s %-5s %12.0f %12s %12s %12.3f %7d\n' "$sc" "$s" "$(med "$sc" "$s" 4)" \
            "$(bench_fmt_ms "$(med "$sc" "$s" 5)")" "$(bench_fmt_ms "$(med "$sc" "$s" 6)")" "$(med "$sc" "$s" 7)" \
            "$(errs "$sc" "$s")"
    done
done
noisy=$(awk -F'\t' -v n="$NOISE_PCT" '$10 > n' "$results" | wc -l)
if [ "$noisy" -gt 0 ]; then
    echo "warning: other processes took > ${NOISE_PCT}% of a CPU during $noisy of the runs: figures are unreliable;"
    echo "         run on an otherwise idle machine"
fi

missed=0
if [ -n "${pid[corio]:-}" ] && [ -n "${pid[nginx]:-}" ]; then
    echo
    echo "== corio / nginx, ratios of the medians; targets"
    printf '%-10s %8s %8s %8s   %s\n' scenario CPU/req req/s p99 "targets (corio / nginx)"
    for sc in "${scenarios[@]}"; do
        r_cpu=$(ratio "$(med "$sc" corio 7)" "$(med "$sc" nginx 7)")
        r_rps=$(ratio "$(med "$sc" corio 4)" "$(med "$sc" nginx 4)")
        r_p99=$(ratio "$(med "$sc" corio 5)" "$(med "$sc" nginx 5)")
        if [ "$sc" = pipeline16 ]; then
            checks=("CPU/req" "$r_cpu" "<=" 0.2 "req/s" "$r_rps" ">=" 5)
        else
            checks=("CPU/req" "$r_cpu" "<=" 0.9 "req/s" "$r_rps" ">=" 1 "p99" "$r_p99" "<=" 1)
        fi
        verdicts=
        for ((k = 0; k < ${#checks[@]}; k += 4)); do
            if awk -v v="${checks[k + 1]}" -v op="${checks[k + 2]}" -v t="${checks[k + 3]}" \
                'BEGIN { exit !(v != "nan" && (op == "<=" ? v + 0 <= t : v + 0 >= t)) }'; then
                verdict=ok
            else
                verdict=MISSED
                missed=$((missed + 1))
            fi
            verdicts+="${verdicts:+; }${checks[k]} ${checks[k + 2]} ${checks[k + 3]}x: $verdict"
        done
        if [ "$(errs "$sc" corio)" -gt 0 ]; then
            verdicts+="; corio had errors: FAILED"
            missed=$((missed + 1))
        fi
        [ "$(errs "$sc" nginx)" -gt 0 ] && verdicts+="; nginx had errors: comparison suspect"
        printf '%-10s %8s %8s %8s   %s\n' "$sc" "$(fx "$r_cpu")" "$(fx "$r_rps")" "$(fx "$r_p99")" "$verdicts"
    done
    echo
    bench_verdict "$missed" "$noisy"
fi
bench_raw_and_exit "$results" "$missed" \
    "scenario server run req/s p99_ms p50_ms cpu_us_per_req requests errors noise_pct"
