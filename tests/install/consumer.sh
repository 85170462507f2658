#!/usr/bin/env bash
# tests/install/consumer.sh - a program of its own (tests/examples/consumer)
# built out of tree against the installed corio, every way a user would:
# with CMake (find_package(corio): corio::corio, the shared library, and
# corio::corio_static), with pkg-config (shared, and fully static with
# --static), and with corio's sources added by add_subdirectory (which must
# build the library but neither corio's tests nor its daemon). Each binary
# must link the library it asked for, serve its routes with 2 workers
# (GET /hello, GET /backend through the async client, the WebSocket
# /ws/upper, the app's /readyz), and exit 0 on SIGTERM.
. "$(dirname "$0")/lib.sh"
: "${CORIO_SOURCE_DIR:?the source tree of corio}"
src=$CORIO_SOURCE_DIR/tests/examples/consumer
command -v curl >/dev/null || skip "no curl"
command -v pkg-config >/dev/null || skip "no pkg-config"
# Debian's interpreter, which has Debian's python3-websockets (a pyenv's may not).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" -c "import websockets" 2>/dev/null || skip "no python3-websockets"
jobs=$(nproc 2>/dev/null || echo 2)

# The backend of GET /backend: a Python HTTP server whose / says "backend".
mkdir -p "$work/backend"
echo backend >"$work/backend/index.html"
"$py" -u -m http.server 0 --bind 127.0.0.1 --directory "$work/backend" >"$work/backend.out" 2>&1 &
backend_pid=$!
on_exit_hooks+=("kill -KILL $backend_pid 2>/dev/null")
for i in $(seq 100); do
    backend_port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$work/backend.out" | head -n 1)
    [ -n "$backend_port" ] && break
    sleep 0.1
done
[ -n "$backend_port" ] || fail "the backend did not start: $(cat "$work/backend.out")"
# ws_upper <port>: /ws/upper answers "abc" with "ABC".
ws_upper() {
    "$py" - "$1" <<'PY'
import asyncio, sys, websockets
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{sys.argv[1]}/ws/upper", open_timeout=10) as ws:
        await ws.send("abc")
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == "ABC", got
asyncio.run(main())
PY
}
# run <name> <binary> [env...]: serves (corio's flags: the port the kernel
# picks, read from its log), is asked, is stopped.
run() {
    local name=$1 bin=$2 err=$work/$1.err port= pid i body rc
    shift 2
    env HELLO_BACKEND="127.0.0.1:$backend_port" "$@" \
        "$bin" --listen 127.0.0.1:0 --access-log off --workers 2 >/dev/null 2>"$err" &
    pid=$!
    on_exit_hooks+=("kill -KILL $pid 2>/dev/null")
    for i in $(seq 100); do # 10 s for the "ready" line
        grep -q ' ready ' "$err" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$err" | head -n 1)
    [[ $port =~ ^[0-9]+$ ]] || fail "$name logged no port: $(cat "$err")"
    body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/hello") || fail "$name: GET /hello failed"
    [ "$body" = hello ] || fail "$name answered '$body', not 'hello'"
    body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/backend") ||
        fail "$name: GET /backend failed"
    [ "$body" = backend ] || fail "$name: GET /backend answered '$body', not the backend's 'backend'"
    ws_upper "$port" || fail "$name: /ws/upper did not answer abc with ABC"
    curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" |
        grep -qx 200 || fail "$name: the built-in /readyz is not 200"
    kill -TERM "$pid"
    rc=0
    timeout 15 tail --pid="$pid" -f /dev/null || fail "$name did not exit within 15 s of SIGTERM"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name exited $rc after SIGTERM: $(cat "$err")"
    echo "$name: /hello, /backend (through the client), /ws/upper and /readyz answer; SIGTERM -> exit 0"
}
# needs <binary> <yes|no>: whether it loads libcorio.so.0.
needs() {
    if readelf -d "$1" | grep -q 'NEEDED.*\[libcorio\.so\.0\]'; then
        [ "$2" = yes ] || fail "$1 loads libcorio.so.0, it should hold libcorio.a"
    else
        [ "$2" = no ] || fail "$1 does not load libcorio.so.0"
    fi
}

echo "== README's \"Writing handlers\" shows $src/hello.c as it is"
# The section's first C block must be the file, byte for byte.
awk '/^## Writing handlers/ {w = 1} w && /^```c$/ {c = 1; next} c && /^```$/ {exit} c' \
    "$CORIO_SOURCE_DIR/README.md" >"$work/readme-hello.c"
cmp -s "$work/readme-hello.c" "$src/hello.c" ||
    fail "README's Writing handlers differs from hello.c: $(diff "$work/readme-hello.c" "$src/hello.c" | head -20)"
echo "== CMake, find_package(corio) from $prefix"
cmake -S "$src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$CC" >"$work/cmake.log" 2>&1 || fail "configure: $(cat "$work/cmake.log")"
cmake --build "$work/cmake" -j"$jobs" >>"$work/cmake.log" 2>&1 || fail "build: $(cat "$work/cmake.log")"
needs "$work/cmake/hello" yes
needs "$work/cmake/hello-static" no
run cmake-shared "$work/cmake/hello" LD_LIBRARY_PATH="$libdir"
run cmake-static "$work/cmake/hello-static"

echo "== pkg-config from $libdir/pkgconfig"
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046 # the flags are words
"$CC" -Wall -Wextra -Werror -o "$work/pc-shared" "$src/hello.c" $(pkg-config --cflags --libs corio) ||
    fail "cc hello.c \$(pkg-config --cflags --libs corio)"
# shellcheck disable=SC2046
"$CC" -Wall -Wextra -Werror -static -o "$work/pc-static" "$src/hello.c" \
    $(pkg-config --static --cflags --libs corio) ||
    fail "cc -static hello.c \$(pkg-config --static --cflags --libs corio)"
unset PKG_CONFIG_PATH
needs "$work/pc-shared" yes
readelf -d "$work/pc-static" | grep -q NEEDED && fail "pc-static is not linked statically"
run pkg-config-shared "$work/pc-shared" LD_LIBRARY_PATH="$libdir"
run pkg-config-static "$work/pc-static"

echo "== CMake, add_subdirectory($CORIO_SOURCE_DIR)"
cmake -S "$src" -B "$work/sub" -DCORIO_SOURCE_DIR="$CORIO_SOURCE_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$CC" >"$work/sub.log" 2>&1 || fail "configure: $(cat "$work/sub.log")"
cmake --build "$work/sub" -j"$jobs" >>"$work/sub.log" 2>&1 || fail "build: $(cat "$work/sub.log")"
[ ! -e "$work/sub/corio/tests" ] || fail "add_subdirectory configured corio's tests"
[ ! -e "$work/sub/corio/server/corio" ] || fail "add_subdirectory built corio's daemon"
needs "$work/sub/hello" yes
needs "$work/sub/hello-static" no
run subdirectory-shared "$work/sub/hello"
run subdirectory-static "$work/sub/hello-static"
echo "== the consumer builds and runs every way"
