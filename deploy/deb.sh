#!/usr/bin/env bash
# deploy/deb.sh - builds corio's Debian packages with CPack (cmake/package.cmake):
# corio, libcorio0 and libcorio-dev, as corio_<version>_<arch>.deb and so on,
# from a Release tree of their own (build-deb/, CORIO_DEB_BUILD_DIR) with
# the prefix /usr, and copies them into OUTDIR (default build-deb/debs).
# Installs the build dependencies with apt-get if missing (deploy/deps.sh).
#   deploy/deb.sh [OUTDIR]
#   apt-get install ./OUTDIR/corio_*.deb      # README, "Debian package"
set -euo pipefail
out=${1:+$(realpath -m "$1")} # OUTDIR from where it is given
cd "$(dirname "$0")/.."
. deploy/deps.sh
corio_install_deps deb
tree=${CORIO_DEB_BUILD_DIR:-build-deb}
out=${out:-$tree/debs}

cmake -S . -B "$tree" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DCORIO_BUILD_TESTS=OFF >/dev/null
cmake --build "$tree" -j"$(nproc)" >/dev/null
rm -f "$tree"/*.deb # an earlier version's
(cd "$tree" && cpack -G DEB) >"$tree/cpack.log" 2>&1 || { cat "$tree/cpack.log" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/corio_*.deb "$out"/libcorio0_*.deb "$out"/libcorio-dev_*.deb
cp "$tree"/*.deb "$out"/
for d in "$out"/*.deb; do
    echo "deb: $d: $(dpkg-deb -f "$d" Package Version Depends | paste -sd ' ')"
done
