#!/usr/bin/env bash
# tests/install/headers.sh - the installed headers (include/corio/) are the
# public ones (CORIO_PUBLIC_HEADERS: their names, from cmake/library.cmake)
# and no others, and each compiles on its own, included twice, as C11 and
# as C++17, with -Wall -Wextra -Werror (-Wpedantic off: g++ takes the
# flexible array member of cio_seg as an extension).
. "$(dirname "$0")/lib.sh"
command -v "$CXX" >/dev/null || skip "no C++ compiler ($CXX)"

: "${CORIO_PUBLIC_HEADERS:?the names of the public headers}"
want=$(printf '%s\n' $CORIO_PUBLIC_HEADERS | sort)
[ "$headers" = "$want" ] ||
    fail "installed headers differ from the public ones (< installed, > public):
$(diff <(echo "$headers") <(echo "$want") | grep '^[<>]')"
n=0
for h in $headers; do
    case $h in *internal*) fail "the internal header $h is installed" ;; esac
    printf '#include "%s"\n#include "%s"\n' "$h" "$h" >"$work/one.h"
    "$CC" -std=c11 -fsyntax-only -Wall -Wextra -Werror -I"$incdir" -x c "$work/one.h" ||
        fail "$h does not compile alone as C11"
    "$CXX" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I"$incdir" -x c++ "$work/one.h" ||
        fail "$h does not compile alone as C++17"
    n=$((n + 1))
done
echo "$n installed headers compile alone as C11 and C++17"
