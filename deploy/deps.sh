# deploy/deps.sh - sourced by deploy/run.sh and tests/run.sh: installs what
# corio needs from Debian 12's packages with apt-get, if anything is missing.
#   corio_install_deps build   # to build and run the daemon
#   corio_install_deps test    # plus what the test suite drives it with
#   corio_install_deps deb     # to build the Debian packages (deploy/deb.sh)
#   corio_install_deps docker  # what tests/docker/cluster_test.sh needs: Debian's
#                              # Docker 20.10 and docker-compose v1, debootstrap

corio_deps_build=(build-essential cmake pkg-config liburing-dev node-llhttp libjansson-dev
                  libssl-dev zlib1g-dev)
# dpkg-shlibdeps (dpkg-dev) computes the packages' Depends; CPack looks
# for the shared objects among the files with file(1).
corio_deps_deb=(dpkg-dev file)
corio_deps_test=(check clang libclang-rt-14-dev curl python3 python3-websockets valgrind procps
                 iproute2 chromium groff-base logrotate wrk)
# The WebSocket client tests also need Node.js and npm (for the npm packages ws
# and playwright-core, installed into the build tree by ctest): any node and
# npm already on PATH serve (Debian's npm package would conflict with a
# Node.js that brings its own npm); otherwise Debian's nodejs and npm.
# groff-base and logrotate check deploy/'s man page and logrotate snippet;
# systemd-analyze (Debian's systemd, present on a full install) checks the
# unit files where it is there.
# (apparmor: docker.io recommends it, and where the kernel enables AppArmor,
# dockerd needs apparmor_parser to load the profile it gives containers)
corio_deps_docker=(docker.io docker-compose debootstrap debian-archive-keyring apparmor iptables iproute2
                   curl python3)

corio_install_deps() {
    local want=("${corio_deps_build[@]}") missing=() p
    [ "${1:-build}" = test ] && want+=("${corio_deps_test[@]}")
    [ "${1:-build}" = deb ] && want+=("${corio_deps_deb[@]}")
    [ "${1:-build}" = docker ] && want=("${corio_deps_docker[@]}")
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${1:-build}" = test ]; then
        command -v node >/dev/null 2>&1 || missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing+=(npm)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "corio: installing ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}
