#!/usr/bin/env bash
# deploy/load.sh - the load kit: every scenario against one base URL, each
# bounded in time, then one summary table. See deploy/wrk/README.md.
set -euo pipefail

kit=$(dirname "$0") # as called, so that the command lines shown stay short
root=$(cd "$kit/.." && pwd)
all_scenarios=(plaintext json pipelined echo ws)

usage() {
    cat <<'EOF'
Usage: deploy/load.sh [OPTION]... [URL]
Puts load on a running corio (default URL http://127.0.0.1:8080), one
scenario after the other, each for a bounded time, and prints one summary
table (requests or messages per second, latency p50/p99, errors) with the
exact command lines:

  plaintext  wrk, GET URL/plaintext
  json       wrk, GET URL/json
  pipelined  wrk, GET URL/plaintext, 16 requests per write (wrk/pipeline.lua)
  echo       wrk, POST URL/echo with a 1 KiB text/plain body (wrk/post_echo.lua)
  ws         corio-bench ws-echo on ws://HOST:PORT/ws/echo: each connection
             sends a 32-byte text message and waits for its echo

  -c N      connections, for every scenario (default 64)
  -t N      wrk threads (default: CPUs, at most 4, at most connections)
  -d SECS   seconds per scenario, 1..3600 (default 10); each run is also
            wrapped in `timeout`
  -s LIST   scenarios to run, comma separated (default
            plaintext,json,pipelined,echo,ws)
  -C LIST   pin the load generator (wrk, corio-bench) to these CPUs
            (taskset -c LIST), e.g. 1 or 2-3
  -h        this help

Errors are socket errors (connect, read, write, timeout) plus answers
other than 2xx/3xx for wrk, and wrong, missing or lost messages and
connections for the WebSocket client. The exit status is 0 when every
scenario ran without an error, 1 otherwise, 2 for bad usage or a missing
tool.

Needs wrk (apt-get install wrk) for the HTTP scenarios and corio-bench for
the WebSocket one: $CORIO_BENCH if set, else build/tests/corio-bench of
this checkout, else corio-bench on PATH, else this script builds it in the
checkout (cmake --build build --target corio-bench; Release, like
deploy/run.sh, when build/ is not configured yet).
The HTTP scenarios work against any server with these routes; ws needs an
IPv4 address or name and plain ws:// (http:// URL).

Start the server with its access log off (./deploy/run.sh --access-log off):
five seconds of wrk write some 430,000 log lines.

Examples:
  deploy/load.sh                                  # 64 connections, 10 s each, 127.0.0.1:8080
  deploy/load.sh -d 5 -c 256 http://10.0.0.5:8080
  deploy/load.sh -s plaintext,ws -C 1 -d 3
EOF
}

die() {
    echo "load.sh: $*" >&2
    exit 2
}
isnum() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

conns=64 threads='' secs=10 cpus='' scen_arg=''
while getopts ':c:t:d:s:C:h' opt; do
    case $opt in
    c) conns=$OPTARG ;;
    t) threads=$OPTARG ;;
    d) secs=${OPTARG%s} ;;
    s) scen_arg=$OPTARG ;;
    C) cpus=$OPTARG ;;
    h)
        usage
        exit 0
        ;;
    :) die "option -$OPTARG needs a value (see -h)" ;;
    *) die "unknown option -$OPTARG (see -h)" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || die "one URL at most (see -h)"
url=${1:-http://127.0.0.1:8080}

isnum "$conns" || die "bad -c '$conns'"
[ -z "$threads" ] || isnum "$threads" || die "bad -t '$threads'"
if ! isnum "$secs" || [ "$secs" -gt 3600 ]; then
    die "-d must be 1..3600 seconds, not '$secs'"
fi
if [ -n "$cpus" ]; then
    [[ "$cpus" =~ ^[0-9][0-9,-]*$ ]] || die "bad -C '$cpus' (CPU list, e.g. 1 or 2-3)"
    command -v taskset >/dev/null 2>&1 || die "-C needs taskset: apt-get install util-linux"
fi

# the scenarios, in the table's order
want=()
if [ -n "$scen_arg" ]; then
    IFS=, read -r -a asked <<<"$scen_arg"
    for a in "${asked[@]}"; do
        case " ${all_scenarios[*]} " in
        *" $a "*) ;;
        *) die "unknown scenario '$a' (${all_scenarios[*]})" ;;
        esac
    done
    for s in "${all_scenarios[@]}"; do
        case ",$scen_arg," in *",$s,"*) want+=("$s") ;; esac
    done
else
    want=("${all_scenarios[@]}")
fi
[ ${#want[@]} -gt 0 ] || die "no scenario to run"
need_wrk=0 need_ws=0
for s in "${want[@]}"; do
    if [ "$s" = ws ]; then need_ws=1; else need_wrk=1; fi
done

# URL: scheme://host[:port][/prefix]
re='^(https?)://(\[[0-9A-Fa-f:.]+\]|[^]/:[]+)(:([0-9]+))?(/.*)?$'
[[ "$url" =~ $re ]] || die "URL must be http[s]://HOST[:PORT][/PREFIX], not '$url'"
scheme=${BASH_REMATCH[1]} host=${BASH_REMATCH[2]} port=${BASH_REMATCH[4]}
prefix=${BASH_REMATCH[5]%/}
[ -n "$port" ] || { if [ "$scheme" = https ]; then port=443; else port=80; fi; }
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "bad port in '$url'"
fi
base="$scheme://$host:$port$prefix"

# ---- tools -----------------------------------------------------------------

if [ $need_wrk -eq 1 ] && ! command -v wrk >/dev/null 2>&1; then
    die "wrk is not installed: sudo apt-get install wrk (Debian, Ubuntu), or build it from
  https://github.com/wg/wrk; or leave the HTTP scenarios out: -s ws"
fi

ws_addr=''
if [ $need_ws -eq 1 ]; then
    [ "$scheme" = http ] || die "the WebSocket client speaks plain ws:// only, not wss://: leave it out (-s plaintext,json,pipelined,echo)"
    h=${host#[}
    h=${h%]}
    if [[ "$h" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
        ws_addr=$h
    elif [[ "$h" == *:* ]]; then
        die "the WebSocket client connects over IPv4 only, not to [$h]: use an IPv4 address or leave it out (-s plaintext,json,pipelined,echo)"
    else
        ws_addr=$(getent ahostsv4 "$h" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
        [ -n "$ws_addr" ] || die "cannot resolve '$h' to an IPv4 address for the WebSocket client"
    fi
fi

# Is anything listening? (Before corio-bench may be built: once corio
# answers, deploy/run.sh's build in build/ is over, and two builds never
# share the directory.)
chk_host=${host#[}
chk_host=${chk_host%]}
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
if ! timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$chk_host" "$port" 2>/dev/null; then
    die "nothing accepts connections on $chk_host:$port: start corio first,
  e.g. ./deploy/run.sh --access-log off &"
fi

# corio-bench: $CORIO_BENCH, this checkout's build, PATH, or built here
bench=''
find_bench() {
    if [ -n "${CORIO_BENCH:-}" ]; then
        [ -x "$CORIO_BENCH" ] || die "CORIO_BENCH=$CORIO_BENCH is not an executable"
        bench=$CORIO_BENCH
        return 0
    fi
    local checkout=0
    [ -f "$root/CMakeLists.txt" ] && [ -f "$root/tests/bench/bench_ws.c" ] && checkout=1
    if [ $checkout -eq 1 ] && [ -x "$root/build/tests/corio-bench" ]; then
        bench=$root/build/tests/corio-bench
        return 0
    fi
    if command -v corio-bench >/dev/null 2>&1; then
        bench=$(command -v corio-bench)
        return 0
    fi
    local how="build it in a corio checkout (cmake --build build --target corio-bench)
  or set CORIO_BENCH=/path/to/corio-bench; or leave the WebSocket scenario out:
  -s plaintext,json,pipelined,echo"
    [ $checkout -eq 1 ] || die "the WebSocket load client corio-bench was not found: $how"
    command -v cmake >/dev/null 2>&1 ||
        die "the WebSocket load client corio-bench is not built and cmake is missing:
  ./deploy/run.sh installs what the build needs (cmake too); then run this again"
    local log
    log=$(mktemp)
    echo "load.sh: building the WebSocket load client: cmake --build $root/build --target corio-bench" >&2
    if { [ -f "$root/build/CMakeCache.txt" ] ||
        cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DCORIO_BUILD_TESTS=OFF; } >"$log" 2>&1 &&
        cmake --build "$root/build" -j"$(nproc)" --target corio-bench >>"$log" 2>&1 &&
        [ -x "$root/build/tests/corio-bench" ]; then
        rm -f "$log"
        bench=$root/build/tests/corio-bench
        return 0
    fi
    tail -n 15 "$log" >&2
    rm -f "$log"
    die "building corio-bench failed (./deploy/run.sh installs what the build needs): $how"
}
if [ $need_ws -eq 1 ]; then
    find_bench
    bench=${bench#"$PWD"/} # shorter in the command lines shown
    [[ "$bench" == */* ]] || bench=./$bench
fi

# ---- the runs --------------------------------------------------------------

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# wrk's report -> "rps p50_ms p99_ms errors" (p99 -1 when wrk printed none)
wrk_parse() {
    awk -f "$kit/wrk/report.awk" "$1" | awk '{ print $2, $3, $4, $5 }'
}

# corio-bench's RESULT line -> "per_s p50_ms p99_ms errors"
ws_parse() {
    awk '
    /^RESULT / {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%.1f %.4f %.4f %d\n", v["per_s"], v["p50_us"] / 1000, v["p99_us"] / 1000,
               v["errors"] + v["lost"]
        found = 1
    }
    END { if (!found) exit 1 }' "$1"
}

rows=() cmds=() failed=0 n=0
for s in "${want[@]}"; do
    n=$((n + 1))
    out=$tmp/$s.out err=$tmp/$s.err unit=req/s
    if [ "$s" = ws ]; then
        unit=msg/s
        cmd=()
        [ -n "$cpus" ] && cmd=(taskset -c "$cpus")
        cmd+=("$bench" ws-echo --conns "$conns" --duration "$secs" --warmup 0 --cpu -1
            --server-cpu -1)
        [ -z "$prefix" ] || cmd+=(--path "$prefix/ws/echo")
        cmd+=("$ws_addr:$port")
        shown=$(printf ' %q' "${cmd[@]}")
        shown=${shown# }
        echo "load.sh: [$n/${#want[@]}] $s, $secs s: $shown" >&2
        rc=0
        # connecting is bounded by the client (120 s); timeout is the backstop
        timeout -k 5 $((secs + 150)) "${cmd[@]}" </dev/null >"$out" 2>"$err" || rc=$?
        res=$(ws_parse "$out") || res=''
    else
        cmd=("$kit/wrk/load.sh" -c "$conns" -d "$secs")
        [ -z "$threads" ] || cmd+=(-t "$threads")
        [ -z "$cpus" ] || cmd+=(-C "$cpus")
        case $s in
        plaintext) cmd+=("$base/plaintext") ;;
        json) cmd+=("$base/json") ;;
        pipelined) cmd+=(-p 16 "$base/plaintext") ;;
        echo) cmd+=(-s "$kit/wrk/post_echo.lua" "$base/echo") ;;
        esac
        echo "load.sh: [$n/${#want[@]}] $s, $secs s" >&2
        rc=0
        "${cmd[@]}" </dev/null >"$out" 2>"$err" || rc=$?
        # deploy/wrk/load.sh prints the wrk command it runs as "+ wrk ..."
        shown=$(sed -n 's/^+ //p' "$err" | head -n 1)
        [ -n "$shown" ] || shown=$(printf '%q ' "${cmd[@]}")
        res=$(wrk_parse "$out") || res=''
    fi
    cmds+=("$s: $shown")
    if [ -z "$res" ]; then
        failed=1
        rows+=("$s $conns - $unit - - failed")
        {
            echo "load.sh: $s failed (exit status $rc$([ "$rc" -ne 124 ] || echo ": stopped by timeout")); the end of its output:"
            cat "$out" "$err" | grep -v '^$' | tail -n 20 | sed 's/^/  /'
        } >&2
        continue
    fi
    read -r rate p50 p99 errs <<<"$res"
    [ "$errs" -eq 0 ] && [ "$rc" -eq 0 ] || failed=1
    rows+=("$s $conns $rate $unit $p50 $p99 $errs")
done

# ---- the table -------------------------------------------------------------

fmt_rate() { # 85432.1 -> 85,432
    awk -v v="$1" 'BEGIN {
        if (v == "-") { print "-"; exit }
        s = sprintf("%.0f", v); o = ""
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o }'
}
fmt_ms() { # milliseconds, three significant digits or so; n/a for none
    awk -v v="$1" 'BEGIN {
        if (v == "-") { print "-"; exit }
        if (v <= 0) { print "n/a"; exit }
        if (v < 10) printf "%.2f ms\n", v
        else if (v < 100) printf "%.1f ms\n", v
        else printf "%.0f ms\n", v }'
}

echo
echo "corio load kit: $base, $secs s per scenario, $conns connections$([ -z "$cpus" ] || echo ", load generator on CPUs $cpus")"
echo
printf '%-10s %6s %16s %10s %10s %7s\n' scenario conns "rate" p50 p99 errors
for r in "${rows[@]}"; do
    read -r s c rate unit p50 p99 errs <<<"$r"
    if [ "$rate" = - ]; then
        rate_s=-
    else
        rate_s="$(fmt_rate "$rate") $unit"
    fi
    printf '%-10s %6s %16s %10s %10s %7s\n' "$s" "$c" "$rate_s" "$(fmt_ms "$p50")" \
        "$(fmt_ms "$p99")" "$errs"
done
echo
echo "commands:"
for c in "${cmds[@]}"; do
    echo "  $c"
done
if [[ " ${want[*]} " == *" pipelined "* ]]; then
    echo "(wrk records one latency per batch of 16 pipelined requests; its p99 is often n/a)"
fi
exit $failed
