#!/usr/bin/env bash
# deploy/wrk/load.sh - put HTTP load on a corio (or any) URL with wrk, for a
# bounded time. See deploy/wrk/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/wrk/load.sh [OPTION]... [URL]
Runs wrk against URL (default http://127.0.0.1:8080/plaintext) for a bounded
time and prints its report (requests/s, latency percentiles, errors).

  -t N      wrk threads (default: CPUs, at most 4, at most connections)
  -c N      open connections, all keep-alive (default 64)
  -d SECS   duration in seconds, 1..3600 (default 10)
  -p DEPTH  pipeline DEPTH requests per write (default 1 = no pipelining;
            uses pipeline.lua, next to this script)
  -s LUA    run wrk with this Lua script (e.g. post_echo.lua, next to this
            script: POST a 1 KiB body); not with -p
  -T SECS   wrk's per-request timeout (default 2); slower answers count as
            timeouts
  -C LIST   pin wrk to these CPUs (taskset -c LIST), e.g. 1 or 2-3
  -H HDR    extra request header, e.g. -H 'Accept: text/plain' (repeatable)
  -h        this help

Start the server with its access log off (corio --access-log off): at tens
of thousands of requests a second, writing the log is part of what you would
measure.

Examples:
  deploy/wrk/load.sh                                   # 64 conns, 10 s, /plaintext on :8080
  deploy/wrk/load.sh -c 1000 -d 30 http://10.0.0.5:8080/json
  deploy/wrk/load.sh -p 16 -C 1 http://127.0.0.1:8080/plaintext
  deploy/wrk/load.sh -s deploy/wrk/post_echo.lua http://127.0.0.1:8080/echo

For every scenario at once with one summary table, see deploy/load.sh.
EOF
}

die() {
    echo "load.sh: $*" >&2
    exit 2
}
isnum() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

threads='' conns=64 secs=10 depth=1 tmo=2 cpus='' script='' headers=()
while getopts ':t:c:d:p:s:T:C:H:h' opt; do
    case $opt in
    t) threads=$OPTARG ;;
    c) conns=$OPTARG ;;
    d) secs=${OPTARG%s} ;;
    p) depth=$OPTARG ;;
    s) script=$OPTARG ;;
    T) tmo=${OPTARG%s} ;;
    C) cpus=$OPTARG ;;
    H) headers+=(-H "$OPTARG") ;;
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
url=${1:-http://127.0.0.1:8080/plaintext}
[[ "$url" =~ ^https?://[^/]+ ]] || die "URL must start with http:// or https:// ($url)"

isnum "$conns" || die "bad -c '$conns'"
if ! isnum "$secs" || [ "$secs" -gt 3600 ]; then
    die "-d must be 1..3600 seconds, not '$secs'"
fi
isnum "$depth" || die "bad -p '$depth'"
[ -z "$script" ] || [ "$depth" -eq 1 ] || die "-p and -s do not go together (-p is a script too)"
[ -z "$script" ] || [ -f "$script" ] || die "no wrk script '$script'"
isnum "$tmo" || die "bad -T '$tmo'"
if [ -z "$threads" ]; then
    threads=$(nproc)
    [ "$threads" -gt 4 ] && threads=4
fi
isnum "$threads" || die "bad -t '$threads'"
[ "$threads" -gt "$conns" ] && threads=$conns

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "load.sh: installing wrk" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
    else
        die "wrk is not installed: sudo apt-get install wrk"
    fi
fi

# wrk holds one descriptor per connection
need=$((conns + 64))
hard=$(ulimit -Hn)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
        die "-c $conns needs $need open files, the hard limit is $hard"
    fi
    ulimit -n "$need"
fi

cmd=()
[ -n "$cpus" ] && cmd=(taskset -c "$cpus")
cmd+=(wrk "-t$threads" "-c$conns" "-d${secs}s" "--timeout" "${tmo}s" --latency "${headers[@]}")
if [ "$depth" -gt 1 ]; then
    lua=$(dirname "$0")/pipeline.lua
    [ -f "$lua" ] || die "$lua is missing (copy deploy/wrk/ whole)"
    cmd+=(-s "$lua" "$url" -- "$depth")
elif [ -n "$script" ]; then
    cmd+=(-s "$script" "$url")
else
    cmd+=("$url")
fi

{
    printf '+'
    printf ' %q' "${cmd[@]}"
    echo
} >&2
# -d bounds the run; timeout is the backstop should wrk hang
exec_rc=0
timeout -k 5 $((secs + tmo + 30)) "${cmd[@]}" || exec_rc=$?
[ $exec_rc -eq 124 ] && echo "load.sh: wrk did not finish in time and was stopped" >&2
exit $exec_rc
