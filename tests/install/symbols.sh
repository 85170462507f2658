#!/usr/bin/env bash
# tests/install/symbols.sh - the installed libcorio.so has the SONAME
# libcorio.so.0 and exports exactly the public API: every function and
# variable the installed headers declare, and nothing else (no cio__*
# helper, http_*, ws_* or llhttp function; see LIBRARY in cio.h). Then a
# C++ program that takes the address of each declared function links
# against it and runs: every declaration has C linkage (extern "C") and
# resolves in the shared library.
. "$(dirname "$0")/lib.sh"

soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = libcorio.so.0 ] || fail "SONAME is '$soname', not libcorio.so.0"

# The functions the headers declare, by GCC's -aux-info (one line per
# declaration, with the file it is in); static inline ones are not symbols.
printf '#include "%s"\n' $headers >"$work/all.c"
aux=
for c in "$CC" gcc; do
    if "$c" -fsyntax-only -aux-info "$work/aux.txt" -I"$incdir" "$work/all.c" 2>/dev/null; then
        aux=$work/aux.txt
        break
    fi
done
[ -n "$aux" ] || skip "no compiler with GCC's -aux-info to list the declarations"
grep -F "/* $incdir/" "$aux" | grep -v '\*/ static ' |
    sed -E 's|^/\* [^*]* \*/ extern ||; s| \(.*||; s|.*[ *]||' | sort -u >"$work/functions"
# ... and the variables (extern lines; not extern "C").
cat "$incdir"/*.h | grep -E '^extern [^"]' | sed -E 's/[[;].*//; s/.*[ *]//' | sort -u \
    >"$work/variables"
! grep -vE '^[A-Za-z_][A-Za-z0-9_]*$' "$work/functions" "$work/variables" ||
    fail "declarations not understood (above)"
sort -u "$work/functions" "$work/variables" >"$work/declared"

# What the library exports (older linkers also export these three markers).
nm -D --defined-only "$so" | awk '{print $NF}' | grep -vxE '_edata|_end|__bss_start' |
    sort -u >"$work/exported"
missing=$(comm -23 "$work/declared" "$work/exported")
extra=$(comm -13 "$work/declared" "$work/exported")
[ -z "$missing" ] || fail "declared in the public headers but not exported:
$missing"
[ -z "$extra" ] || fail "exported but not declared in the public headers (internal):
$extra"
nf=$(wc -l <"$work/functions")
nv=$(wc -l <"$work/variables")
helpers=$(grep '^cio__' "$work/exported" | paste -sd ' ' || true)
echo "libcorio.so ($soname) exports exactly what the public headers declare:" \
    "$nf functions, $nv variable(s); of them cio__ helpers that inline functions" \
    "of the headers call: ${helpers:-none}"

command -v "$CXX" >/dev/null || skip "no C++ compiler ($CXX) for the linkage check"
{
    printf '#include "%s"\n' $headers
    echo '#include <cstdio>'
    echo 'typedef void (*fn)(void);'
    echo 'static const fn fns[] = {'
    sed 's/.*/    reinterpret_cast<fn>(\&&),/' "$work/functions"
    echo '};'
    echo 'static const void *const vars[] = {'
    sed 's/.*/    static_cast<const void *>(\&&),/' "$work/variables"
    echo '};'
    echo 'int main()'
    echo '{'
    echo '    std::printf("%zu functions, %zu variables\n", sizeof(fns) / sizeof(*fns),'
    echo '                sizeof(vars) / sizeof(*vars));'
    echo '    return 0;'
    echo '}'
} >"$work/linkage.cpp"
"$CXX" -std=c++17 -I"$incdir" -o "$work/linkage" "$work/linkage.cpp" -L"$libdir" -lcorio ||
    fail "a C++ program cannot link every declared function (no extern \"C\"?)"
LD_LIBRARY_PATH=$libdir "$work/linkage" || fail "the C++ linkage program failed"
echo "a C++17 program links every declared function against libcorio.so"
