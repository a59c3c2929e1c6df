#!/bin/sh
# `npm start`: runs the daemon, building dist/ first only when it is missing or older than src/.
# Arguments go to the daemon, e.g. `npm start -- --config /etc/netvol/config.yaml`.
#
# Stopping: npm passes SIGTERM and SIGINT on to its child only, which is the `sh -c` that runs
# this line; a shell that is killed does not pass them on to a daemon running under it. So
# package.json runs this script with `exec`, and this script ends with `exec`: the daemon takes
# the place of both shells and is npm's own child, and `kill <npm's pid>` reaches it.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# Written after a build that succeeded, with the time the build started: a failed build (tsc emits
# even with errors) or a file saved during the build leaves it older than src/, so the next start
# builds again.
stamp="$root/dist/.netvol-built"

if [ ! -f "$root/dist/main.js" ] || [ ! -f "$stamp" ] ||
  [ -n "$(find "$root/src" "$root/tsconfig.json" -newer "$stamp" -print 2>/dev/null | head -n 1)" ]; then
  echo "netvol: building dist/ (missing or older than src/)" >&2
  mkdir -p "$root/dist"
  started="$root/dist/.netvol-building.$$"
  : >"$started"
  if ! (cd "$root" && npm run --silent build); then
    rm -f "$started"
    echo "netvol: the build failed; see tsc's errors above" >&2
    exit 1
  fi
  mv -f "$started" "$stamp"
fi

exec node "$root/dist/main.js" "$@"
