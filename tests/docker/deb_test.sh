#!/usr/bin/env bash
# tests/docker/deb_test.sh - the Debian packages deploy/deb.sh built, on a
# clean Debian 12: checks their names and control fields here, then, in a
# fresh container of the local debian:bookworm-slim image (the docker of
# DOCKER_HOST; tests/docker/cluster_test.sh runs this with its own dockerd
# and the base image it made), tests/docker/deb_check.sh installs them with
# apt-get (dependencies from the mirror), runs corio --version,
# --check-config and the daemon from the package, builds a program against
# libcorio-dev and runs it, and removes and purges them.
#   tests/docker/deb_test.sh DEBDIR
# Fails (never skips) when something cannot be done; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
debs=$(cd "${1:?the directory of the .deb files}" && pwd)
docker=${DOCKER:-/usr/bin/docker}
image=debian:bookworm-slim
name=corio-deb-test
fail() {
    printf 'deb-test: FAIL: %s\n' "$*" >&2
    exit 1
}
trap 'timeout 20 "$docker" rm -f "$name" >/dev/null 2>&1 || true' EXIT

version=$(sed -n 's/^project(corio VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
[ -n "$version" ] || fail "no version in CMakeLists.txt's project()"
arch=$(dpkg --print-architecture)
for ps in corio:net libcorio0:libs libcorio-dev:libdevel; do
    p=${ps%%:*}
    f=$debs/${p}_${version}_$arch.deb
    [ -f "$f" ] || fail "no $f: $(ls "$debs")"
    for kv in "Package:$p" "Version:$version" "Architecture:$arch" "Section:${ps#*:}" Priority:optional; do
        v=$(dpkg-deb -f "$f" "${kv%%:*}")
        [ "$v" = "${kv#*:}" ] || fail "$f: ${kv%%:*} is '$v', not '${kv#*:}'"
    done
done
# dpkg-shlibdeps found what the daemon and the library link
for p in corio libcorio0; do
    dep=$(dpkg-deb -f "$debs/${p}_${version}_$arch.deb" Depends)
    for d in libc6 liburing2 libjansson4 libssl3 zlib1g; do
        [[ ", $dep," == *", $d ("* ]] || fail "$p's Depends lacks $d: $dep"
    done
done
dep=$(dpkg-deb -f "$debs/libcorio-dev_${version}_$arch.deb" Depends)
[[ $dep == "libcorio0 (= $version),"* ]] || fail "libcorio-dev's Depends: $dep"
echo "deb-test: corio, libcorio0, libcorio-dev ${version}_$arch.deb: names, control fields, Depends"

"$docker" image inspect "$image" >/dev/null 2>&1 || fail "no image $image (deploy/docker-base-image.sh makes it)"
# The seccomp profile the compose cluster runs under: io_uring allowed.
timeout 300 "$docker" run --rm --name "$name" \
    --security-opt seccomp="$root/deploy/seccomp-io_uring.json" \
    -v "$debs:/debs:ro" -v "$root/tests/examples/consumer:/src:ro" \
    -v "$root/tests/docker/deb_check.sh:/deb_check.sh:ro" -e CORIO_VERSION="$version" \
    "$image" bash /deb_check.sh || fail "in the container (above)"
