#!/usr/bin/env bash
# tests/install/components.sh - the install components the Debian packages
# are made of (cmake/package.cmake: Server -> corio, Runtime -> libcorio0,
# Development -> libcorio-dev) split the whole install between them: each
# file in exactly one, none left in another component (it would be in no
# package). Runtime is libcorio.so.0* alone, Server the daemon and the host
# files, which are deploy/'s, the man page gzipped without name or time
# stamp (gzip -9n, as Debian wants it).
. "$(dirname "$0")/lib.sh"
: "${CORIO_SOURCE_DIR:?the source tree of corio}"
command -v gzip >/dev/null || skip "no gzip"

files() { (cd "$1" && find . ! -type d | sed 's|^\./||' | sort); }
all=$(files "$prefix")
for c in Server Runtime Development; do
    cmake --install "$CORIO_BUILD_DIR" --prefix "$work/$c" --component "$c" >"$work/$c.log" ||
        fail "cmake --install --component $c: $(cat "$work/$c.log")"
    files "$work/$c" >"$work/$c.files"
    [ -s "$work/$c.files" ] || fail "component $c installs nothing"
done
dups=$(sort "$work"/*.files | uniq -d)
[ -z "$dups" ] || fail "in more than one component: $dups"
split=$(sort "$work"/*.files)
[ "$split" = "$all" ] ||
    fail "the components differ from the whole install (< whole, > components):
$(diff <(echo "$all") <(echo "$split") | grep '^[<>]')"

lib=${libdir#"$prefix"/}
runtime=$(tr '\n' ' ' <"$work/Runtime.files")
[[ $runtime =~ ^$lib/libcorio\.so\.0\ $lib/libcorio\.so\.0\.[0-9]+\.[0-9]+\ $ ]] ||
    fail "Runtime installs $runtime, not libcorio.so.0 and its file alone"
want_server=$(printf '%s\n' bin/corio etc/corio/corio.json etc/logrotate.d/corio \
    lib/systemd/system/corio.service lib/systemd/system/corio.socket share/man/man8/corio.8.gz | sort)
[ "$(cat "$work/Server.files")" = "$want_server" ] ||
    fail "Server installs (< it, > wanted):
$(diff "$work/Server.files" <(echo "$want_server") | grep '^[<>]')"

d=$CORIO_SOURCE_DIR/deploy
s=$work/Server
for p in etc/corio/corio.json:corio.json etc/logrotate.d/corio:corio.logrotate \
    lib/systemd/system/corio.service:corio.service lib/systemd/system/corio.socket:corio.socket; do
    cmp -s "$s/${p%%:*}" "$d/${p#*:}" || fail "${p%%:*} is not deploy/${p#*:}"
done
man=$s/share/man/man8/corio.8.gz
gzip -dc "$man" | cmp -s - "$d/corio.8" || fail "corio.8.gz is not deploy/corio.8 gzipped"
# RFC 1952: byte 3 is FLG (0x08 FNAME), bytes 4-7 MTIME
head -c 8 "$man" | od -An -tu1 | {
    read -r _ _ _ flg m0 m1 m2 m3
    [ $((flg & 8)) -eq 0 ] && [ $((m0 + m1 + m2 + m3)) -eq 0 ] ||
        fail "corio.8.gz keeps a file name or a time stamp (gzip -n: FLG $flg, MTIME $m0 $m1 $m2 $m3)"
}
echo "Server $(wc -l <"$work/Server.files"), Runtime $(wc -l <"$work/Runtime.files"), Development $(wc -l <"$work/Development.files") files: the whole install, each file once; the host files are deploy/'s"
