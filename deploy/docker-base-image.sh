#!/usr/bin/env bash
# deploy/docker-base-image.sh - makes the base image deploy/Dockerfile starts
# FROM, debian:bookworm-slim, on a machine whose Docker cannot reach a
# registry (only a Debian mirror): debootstrap's minbase variant of bookworm,
# imported into the local daemon under that tag. Where a registry is
# reachable this is not needed (`docker build` pulls the official image).
# Does nothing when the image is there already. Root; needs debootstrap.
#   deploy/docker-base-image.sh [TAG]     # default debian:bookworm-slim
# DOCKER names the client (default /usr/bin/docker, Debian's docker.io).
set -euo pipefail
tag=${1:-debian:bookworm-slim}
docker=${DOCKER:-/usr/bin/docker}
if "$docker" image inspect "$tag" >/dev/null 2>&1; then
    echo "docker-base-image: $tag is there already"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "docker-base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

# The mirrors this machine's apt uses (one-line or deb822 sources), else
# Debian's own.
sources() { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' || true; }
mirror=$(sources | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
security=$(sources | grep -oE 'https?://[^ ]*/debian-security/?( |$)' | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}

work=$(mktemp -d /var/tmp/corio-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "docker-base-image: debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
}
# As the official image: main, updates and security; no package cache.
rm -f "$work/rootfs/etc/apt/sources.list"
cat >"$work/rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/cache/apt/*.bin "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -c . | "$docker" import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "docker-base-image: imported $tag ($("$docker" image inspect -f '{{.Size}}' "$tag") bytes)"
