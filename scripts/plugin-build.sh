#!/usr/bin/env bash
# Builds netvol's managed Docker plugin and creates it in a dockerd (`npm run plugin:build`):
#   1. make sure the local base image exists (scripts/plugin-base.sh: debootstrap, no registry);
#   2. `docker build --network host` the Dockerfile (apt-get inside needs the host's network);
#   3. `docker create` + `docker export` the image into a temporary plugin dir's rootfs/;
#   4. add plugin-config/config.json and `docker plugin create NAME DIR`; remove the temporaries.
# The plugin is left disabled: `docker plugin set` works only then. Enable it with `docker plugin enable NAME`.
#
# usage: scripts/plugin-build.sh [--docker-host unix:///path/to/docker.sock] [NAME[:TAG]]
#        NAME defaults to netvol, TAG to the version in package.json.
# env:   DOCKER_HOST (which dockerd), DOCKER (the CLI, default docker), NETVOL_CACHE (base image cache)
set -euo pipefail

usage() {
  echo "usage: scripts/plugin-build.sh [--docker-host unix:///path/to/docker.sock] [NAME[:TAG]]" >&2
  echo "       NAME defaults to netvol, TAG to the version in package.json" >&2
  exit 2
}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
NAME=""
while [ $# -gt 0 ]; do
  case "$1" in
    --docker-host) [ $# -ge 2 ] || usage; export DOCKER_HOST="$2"; shift 2 ;;
    --docker-host=*) export DOCKER_HOST="${1#*=}"; shift ;;
    -h|--help) usage ;;
    -*) echo "plugin-build: unknown option $1" >&2; usage ;;
    *) [ -z "$NAME" ] || usage; NAME="$1"; shift ;;
  esac
done

VERSION="$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$ROOT/package.json" | head -n 1)"
[ -n "$VERSION" ] || { echo "plugin-build: no version in package.json" >&2; exit 1; }
NAME="${NAME:-netvol}"
# A tag is what follows the last ":" unless that ":" belongs to a registry host:port.
case "${NAME##*/}" in *:*) ;; *) NAME="$NAME:$VERSION" ;; esac
BASE="netvol-base:trixie"
IMAGE="netvol-plugin-rootfs:$VERSION"

"$DOCKER" version --format '{{.Server.Version}}' >/dev/null \
  || { echo "plugin-build: no dockerd answers at ${DOCKER_HOST:-the default socket}" >&2; exit 1; }

# The image takes its npm packages from node_modules (see the Dockerfile).
if [ ! -f "$ROOT/node_modules/.package-lock.json" ]; then
  echo "plugin-build: node_modules is missing; running npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund)
fi

if "$DOCKER" plugin inspect "$NAME" >/dev/null 2>&1; then
  echo "plugin-build: plugin $NAME already exists; remove it first (docker plugin disable -f $NAME && docker plugin rm $NAME) or give another NAME:TAG" >&2
  exit 1
fi

DOCKER="$DOCKER" bash "$ROOT/scripts/plugin-base.sh" "$BASE"

echo "plugin-build: docker build $IMAGE"
"$DOCKER" build --network host --build-arg "BASE=$BASE" -t "$IMAGE" "$ROOT" >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/netvol-plugin.XXXXXX")"
cid=""
cleanup() {
  [ -z "$cid" ] || "$DOCKER" rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cid="$("$DOCKER" create "$IMAGE")"
mkdir "$work/rootfs"
"$DOCKER" export "$cid" | tar --numeric-owner -x -C "$work/rootfs"
cp "$ROOT/plugin-config/config.json" "$work/config.json"

echo "plugin-build: docker plugin create $NAME"
"$DOCKER" plugin create "$NAME" "$work" >/dev/null
echo "plugin-build: created $NAME (disabled); next: docker plugin enable $NAME"
