#!/usr/bin/env bash
# Makes sure the local base image netvol-base:trixie exists in the dockerd named by DOCKER_HOST.
# No container registry is needed: the image is a minimal Debian 13 (trixie) made by debootstrap from
# Debian's package mirror and loaded with `docker import`. The root filesystem tarball is kept in a
# cache folder (default .cache/ in the repository, NETVOL_CACHE overrides) so a second build, or a
# second dockerd on the same machine, skips the debootstrap (one to four minutes, mostly downloads).
#
# Why trixie and not bookworm: bookworm's nodejs is 18.x, whose fs.promises.readFile truncates
# /proc/self/mountinfo (a zero-size procfs file) at the first read, so netvol would not see its own
# mounts; trixie's nodejs is 20.x, the version netvol is built and tested with.
#
# usage: scripts/plugin-base.sh [IMAGE]          (default netvol-base:trixie)
# env:   DOCKER (CLI, default docker), NETVOL_CACHE, DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

IMAGE="${1:-netvol-base:trixie}"
SUITE=trixie
DOCKER="${DOCKER:-docker}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${NETVOL_CACHE:-$ROOT/.cache}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TARBALL="$CACHE/netvol-base-$SUITE.tar"

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { echo "plugin-base: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  [ "$(id -u)" -eq 0 ] || { echo "plugin-base: debootstrap needs root" >&2; exit 1; }
  mkdir -p "$CACHE"
  work="$(mktemp -d "$CACHE/base.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "plugin-base: debootstrap $SUITE (minbase) from $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  # Security and point-release updates, as in Debian's own container images.
  cat >"$work/rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
  # What a container never needs: downloaded .debs, apt lists (the Dockerfile runs apt-get update).
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$TARBALL"
fi

echo "plugin-base: importing $TARBALL as $IMAGE"
"$DOCKER" import "$TARBALL" "$IMAGE" >/dev/null
