#!/usr/bin/env bash
# tests/install/consumer.sh - a program of its own (tests/examples/consumer)
# built out of tree against the installed corio, every way a user would:
# with CMake (find_package(corio): corio::corio, the shared library, and
# corio::corio_static), with pkg-config (shared, and fully static with
# --static), and with corio's sources added by add_subdirectory (which must
# build the library but neither corio's tests nor its daemon). Each binary
# must link the library it asked for, answer GET /hello with "hello\n", and
# exit 0 on SIGTERM.
. "$(dirname "$0")/lib.sh"
: "${CORIO_SOURCE_DIR:?the source tree of corio}"
src=$CORIO_SOURCE_DIR/tests/examples/consumer
command -v curl >/dev/null || skip "no curl"
command -v pkg-config >/dev/null || skip "no pkg-config"
jobs=$(nproc 2>/dev/null || echo 2)

# run <name> <binary> [env...]: serves, is asked, is stopped.
run() {
    local name=$1 bin=$2 out=$work/$1.out port= pid i body rc
    shift 2
    env "$@" "$bin" >"$out" 2>"$work/$name.err" &
    pid=$!
    on_exit_hooks+=("kill -KILL $pid 2>/dev/null")
    for i in $(seq 100); do # 10 s for the port line
        port=$(head -n 1 "$out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ $port =~ ^[0-9]+$ ]] || fail "$name printed no port: $(cat "$out" "$work/$name.err")"
    body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/hello") || fail "$name: GET /hello failed"
    [ "$body" = hello ] || fail "$name answered '$body', not 'hello'"
    kill -TERM "$pid"
    rc=0
    timeout 15 tail --pid="$pid" -f /dev/null || fail "$name did not exit within 15 s of SIGTERM"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name exited $rc after SIGTERM: $(cat "$work/$name.err")"
    echo "$name: GET /hello -> hello, SIGTERM -> exit 0"
}

# needs <binary> <yes|no>: whether it loads libcorio.so.0.
needs() {
    if readelf -d "$1" | grep -q 'NEEDED.*\[libcorio\.so\.0\]'; then
        [ "$2" = yes ] || fail "$1 loads libcorio.so.0, it should hold libcorio.a"
    else
        [ "$2" = no ] || fail "$1 does not load libcorio.so.0"
    fi
}

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
"$CC" -Wall -Wextra -Werror -o "$work/pc-shared" "$src/main.c" $(pkg-config --cflags --libs corio) ||
    fail "cc main.c \$(pkg-config --cflags --libs corio)"
# shellcheck disable=SC2046
"$CC" -Wall -Wextra -Werror -static -o "$work/pc-static" "$src/main.c" \
    $(pkg-config --static --cflags --libs corio) ||
    fail "cc -static main.c \$(pkg-config --static --cflags --libs corio)"
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
[ ! -e "$work/sub/corio/server" ] || fail "add_subdirectory configured corio's daemon"
needs "$work/sub/hello" yes
needs "$work/sub/hello-static" no
run subdirectory-shared "$work/sub/hello"
run subdirectory-static "$work/sub/hello-static"
echo "== the consumer builds and runs every way"
