# deploy/deps.sh - sourced by deploy/run.sh and tests/run.sh: installs what
# corio needs from Debian 12's packages with apt-get, if anything is missing.
#   corio_install_deps build   # to build and run the daemon
#   corio_install_deps test    # plus what the test suite drives it with

corio_deps_build=(build-essential cmake pkg-config liburing-dev node-llhttp libjansson-dev
                  libssl-dev zlib1g-dev)
corio_deps_test=(check clang libclang-rt-14-dev curl python3 python3-websockets valgrind procps
                 iproute2)

corio_install_deps() {
    local want=("${corio_deps_build[@]}") missing=() p
    [ "${1:-build}" = test ] && want+=("${corio_deps_test[@]}")
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "corio: installing ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}
