# tests/install/lib.sh - sourced by the checks of what corio installs
# (registered with ctest, label "install"): installs the build tree
# CORIO_BUILD_DIR into a temporary prefix, removed on exit with everything
# else under $work. Exit 77 means "skipped".
set -euo pipefail
export LC_ALL=C
: "${CORIO_BUILD_DIR:?the build tree to install}"
CC=${CC:-cc}
CXX=${CXX:-c++}
work=$(mktemp -d "${TMPDIR:-/tmp}/corio-install.XXXXXX")
on_exit_hooks=()
on_exit() {
    local h
    for h in "${on_exit_hooks[@]}"; do eval "$h" || true; done
    rm -rf "$work"
}
trap on_exit EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
skip() {
    echo "skipped: $*"
    exit 77
}

prefix=$work/prefix
cmake --install "$CORIO_BUILD_DIR" --prefix "$prefix" >"$work/install.log" ||
    fail "cmake --install: $(cat "$work/install.log")"
# --prefix holds it all: a path made absolute at configure time would have
# been written on this machine (cmake/host.cmake).
outside=$(sed -n 's/^-- \(Installing\|Up-to-date\): //p' "$work/install.log" | grep -v "^$prefix/" || true)
[ -z "$outside" ] || fail "installed outside --prefix $prefix: $outside"
so=$(find "$prefix" -name libcorio.so -print -quit)
[ -n "$so" ] || fail "no libcorio.so installed under $prefix"
libdir=$(dirname "$so")
incdir=$prefix/include/corio
[ -d "$incdir" ] || fail "no headers installed in $incdir"
headers=$(cd "$incdir" && ls -- *.h)
