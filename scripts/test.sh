#!/usr/bin/env bash
# The test command (`npm test`): installs what is missing, builds, and runs every tier.
# Each tier's harness starts and stops its own servers (dockerd, sshd, nfs-ganesha).
# Extra arguments go to jest, e.g. `npm test -- --selectProjects unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "netvol's tests mount filesystems and run dockerd: run them as root" >&2
  exit 1
fi
bash scripts/install-deps.sh
[ -x node_modules/.bin/jest ] || npm ci --no-audit --no-fund
npm run build --silent
exec npx jest --runInBand "$@"
