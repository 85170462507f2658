#!/usr/bin/env bash
# tests/docker/deb_check.sh - run by tests/docker/deb_test.sh inside a fresh
# debian:bookworm-slim container, as root, without systemd: the packages in
# /debs installed by apt (their dependencies from the mirror), used, and
# purged. CORIO_VERSION is the project's version; /src is
# tests/examples/consumer. Every wait is bounded; any failure exits 1.
set -euo pipefail
: "${CORIO_VERSION:?the version of the project}"
t0=$SECONDS
say() { printf 'deb-test: [%3d s] %s\n' $((SECONDS - t0)) "$*"; }
fail() {
    printf 'deb-test: FAIL: %s\n' "$*" >&2
    exit 1
}
export DEBIAN_FRONTEND=noninteractive

# ---- install: apt resolves the dependencies from the mirror ---------------
apt-get update -qq >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; fail "apt-get update"; }
# gcc and libc6-dev to build a program against libcorio-dev; pkg-config
# comes with libcorio-dev.
apt-get install -y -qq --no-install-recommends /debs/corio_*.deb /debs/libcorio0_*.deb \
    /debs/libcorio-dev_*.deb gcc libc6-dev >/tmp/apt.log 2>&1 ||
    { tail -n 30 /tmp/apt.log >&2; fail "apt-get install of the three packages"; }
for p in corio libcorio0 libcorio-dev; do
    s=$(dpkg-query -W -f='${Status} ${Version}' "$p")
    [ "$s" = "install ok installed $CORIO_VERSION" ] || fail "$p: $s"
done
lib=/usr/lib/$(gcc -print-multiarch)
# as ldconfig and the loader name it: /lib is a link to /usr/lib
lib_re="(/usr)?${lib#/usr}"
say "apt-get install: corio, libcorio0, libcorio-dev $CORIO_VERSION with $(grep -c '^Setting up' /tmp/apt.log) packages set up"

# ---- what each package put where --------------------------------------------
files() { dpkg -L "$1" | while read -r f; do [ -d "$f" ] || echo "$f"; done | sort; }
want=$(printf '%s\n' /usr/bin/corio /lib/systemd/system/corio.service /lib/systemd/system/corio.socket \
    /etc/corio/corio.json /etc/logrotate.d/corio /usr/share/man/man8/corio.8.gz | sort)
[ "$(files corio)" = "$want" ] || fail "dpkg -L corio: $(files corio | tr '\n' ' ')"
want=$(printf '%s\n' "$lib/libcorio.so.0" "$lib/libcorio.so.$CORIO_VERSION" | sort)
[ "$(files libcorio0)" = "$want" ] || fail "dpkg -L libcorio0: $(files libcorio0 | tr '\n' ' ')"
dev=$(files libcorio-dev)
for f in /usr/include/corio/cio.h /usr/include/corio/cio_http.h "$lib/libcorio.so" "$lib/libcorio.a" \
    "$lib/pkgconfig/corio.pc" "$lib/cmake/corio/corioConfig.cmake" "$lib/cmake/corio/corioTargets.cmake"; do
    grep -qxF "$f" <<<"$dev" || fail "libcorio-dev lacks $f: $(tr '\n' ' ' <<<"$dev")"
done
grep -v -e '^/usr/include/corio/' -e "^$lib/" <<<"$dev" && fail "libcorio-dev has files elsewhere (above)"
[ "$(readlink -f "$lib/libcorio.so")" = "$lib/libcorio.so.$CORIO_VERSION" ] || fail "libcorio.so does not lead to libcorio0's file"
# grep -q reads the output of a command, not a pipe: it stops at the first
# match, and the writer, killed by SIGPIPE, would fail a pipeline (pipefail)
grep -qE "^\s*libcorio\.so\.0 \(.*\) => $lib_re/libcorio\.so\.0$" <<<"$(ldconfig -p)" ||
    fail "ldconfig's cache lacks libcorio.so.0 (the trigger did not run)"
conf=$(dpkg-query -W -f='${Conffiles}' corio | awk '{print $1}' | sort)
[ "$conf" = "$(printf '%s\n' /etc/corio/corio.json /etc/logrotate.d/corio)" ] ||
    fail "corio's conffiles: $(tr '\n' ' ' <<<"$conf")"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' /lib/systemd/system/corio.service)
[ "$exec_start" = /usr/bin/corio ] && [ -x "$exec_start" ] || fail "the unit's ExecStart runs '$exec_start'"
grep -q '^\.TH CORIO 8 ' <<<"$(gzip -dc /usr/share/man/man8/corio.8.gz)" || fail "corio.8.gz is not corio(8)"
say "files: corio $(files corio | wc -l), libcorio0 $(files libcorio0 | wc -l), libcorio-dev $(wc -l <<<"$dev"); /etc's files are conffiles; ldconfig knows libcorio.so.0"

# ---- the daemon ---------------------------------------------------------------
v=$(corio --version)
[ "$v" = "corio $CORIO_VERSION" ] || fail "corio --version: $v"
# The example's access log is in /var/log/corio, which the unit's
# LogsDirectory= makes: as it would.
mkdir -p /var/log/corio
out=$(corio --config /etc/corio/corio.json --check-config 2>&1) || fail "--check-config: $out"
[ "$out" = "corio: configuration OK" ] || fail "--check-config said: $out"
say "corio --version: $v; --check-config of /etc/corio/corio.json: $out"

# stop <pid> <name>: SIGTERM, then it must exit 0 within 15 s.
stop() {
    local rc=0
    kill -TERM "$1"
    timeout 15 tail --pid="$1" -f /dev/null || fail "$2 did not exit within 15 s of SIGTERM"
    wait "$1" || rc=$?
    [ "$rc" -eq 0 ] || fail "$2 exited $rc after SIGTERM: $(tail -n 5 "/tmp/$2.err")"
}
# The unit's command line, in the background (no systemd here).
corio --config /etc/corio/corio.json 2>/tmp/corio.err &
pid=$!
for i in $(seq 100); do
    corio --probe http://127.0.0.1:8080/healthz --probe-timeout 1000 >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || fail "corio exited: $(cat /tmp/corio.err)"
    [ "$i" -lt 100 ] || fail "corio did not answer /healthz on :8080 within 10 s: $(cat /tmp/corio.err)"
    sleep 0.1
done
corio --probe http://127.0.0.1:8080/readyz || fail "corio is not ready"
stop "$pid" corio
grep -q '"GET /healthz HTTP/1.1" 200 ' /var/log/corio/access.log ||
    fail "no /healthz in /var/log/corio/access.log: $(tail -n 3 /var/log/corio/access.log)"
say "corio --config /etc/corio/corio.json: /healthz and /readyz answer (corio --probe), logged in /var/log/corio/access.log; SIGTERM: exit 0"

# ---- a program of its own, built against libcorio-dev ---------------------------
# shellcheck disable=SC2046 # the flags are words
cc -Wall -Wextra -Werror -o /tmp/hello /src/hello.c $(pkg-config --cflags --libs corio) ||
    fail "cc hello.c \$(pkg-config --cflags --libs corio)"
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -static -o /tmp/hello-static /src/hello.c $(pkg-config --static --cflags --libs corio) ||
    fail "cc -static hello.c \$(pkg-config --static --cflags --libs corio)"
grep -qE "libcorio\.so\.0 => $lib_re/libcorio\.so\.0 " <<<"$(ldd /tmp/hello)" || fail "hello does not load libcorio0's library: $(ldd /tmp/hello)"
for h in hello hello-static; do
    # corio's flags (the app API): a port the kernel picks, read from its log
    /tmp/$h --listen 127.0.0.1:0 --access-log off >/dev/null 2>/tmp/$h.err &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' /tmp/$h.err | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ $port =~ ^[0-9]+$ ]] || fail "$h logged no port: $(cat /tmp/$h.err)"
    corio --probe "http://127.0.0.1:$port/hello" || fail "$h: GET /hello"
    corio --probe "http://127.0.0.1:$port/readyz" || fail "$h: the app's /readyz"
    stop "$pid" "$h"
done
say "a program built with pkg-config against libcorio-dev, shared and -static: GET /hello and the app's /readyz answer (corio --probe), SIGTERM: exit 0"

# ---- removal ------------------------------------------------------------------
dpkg -r corio >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log >&2; fail "dpkg -r corio"; }
s=$(dpkg-query -W -f='${Status}' corio)
[ "$s" = "deinstall ok config-files" ] || fail "after dpkg -r corio: $s"
[ ! -e /usr/bin/corio ] && [ ! -e /lib/systemd/system/corio.service ] && [ -f /etc/corio/corio.json ] ||
    fail "dpkg -r corio: the binary or unit stayed, or the conffile went"
apt-get purge -y -qq corio libcorio0 libcorio-dev >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; fail "apt-get purge"; }
for p in corio libcorio0 libcorio-dev; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ -z "$s" ] || [ "$s" = "unknown ok not-installed" ] || fail "$p after the purge: $s"
done
left=$(ls -d /etc/corio /etc/logrotate.d/corio /var/log/corio /usr/include/corio "$lib"/libcorio* \
    "$lib/pkgconfig/corio.pc" "$lib/cmake/corio" /usr/share/man/man8/corio.8.gz 2>/dev/null || true)
[ -z "$left" ] || fail "left after the purge: $left"
grep -q libcorio <<<"$(ldconfig -p)" && fail "ldconfig's cache still has libcorio after the purge"
say "dpkg -r corio keeps /etc/corio/corio.json; apt-get purge removes the three packages, the conffiles and /var/log/corio"
