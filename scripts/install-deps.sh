#!/usr/bin/env bash
# Installs the Debian packages the daemon and its test tiers use, only when something is missing.
# Runs as root (apt-get); prints what it installs.
set -euo pipefail

# command or file that proves the package is present → Debian package
declare -A NEED=(
  [/usr/sbin/dockerd]=docker.io
  [/bin/busybox]=busybox-static
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/bin/sshfs]=sshfs
  [/usr/bin/ganesha.nfsd]=nfs-ganesha
  [/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so]=nfs-ganesha-vfs
  [/usr/sbin/rpcbind]=rpcbind
  [/usr/bin/nfs-ls]=libnfs-utils
  [/usr/sbin/mkfs.ext4]=e2fsprogs
  [/usr/sbin/mkfs.xfs]=xfsprogs
  [/usr/bin/fusermount3]=fuse3
  [/usr/bin/fio]=fio
  [/usr/bin/sqlite3]=sqlite3
  [/usr/sbin/debootstrap]=debootstrap
  [/usr/sbin/losetup]=mount
  [/bin/ip]=iproute2
  [/usr/bin/nsenter]=util-linux
  [/usr/bin/python3]=python3
  [/usr/bin/promtool]=prometheus
  [/usr/bin/zstd]=zstd
)

missing=()
for probe in "${!NEED[@]}"; do
  [ -e "$probe" ] || missing+=("${NEED[$probe]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "netvol tests need these Debian packages: ${missing[*]} — run as root or install them first" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Packages with a service (prometheus, docker.io, openssh-server, rpcbind, nfs-ganesha) must not
# start it: the tests start their own instances with their own config, folders and loopback ports.
# policy-rc.d answering 101 tells invoke-rc.d / deb-systemd-invoke not to start anything while we
# install; one that was already there is left as it was.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by netvol scripts/install-deps.sh while it installs packages\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup_policy() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup_policy EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Nor at the next boot: Prometheus' own service would scrape and listen on :9090 for nothing.
for m in "${missing[@]}"; do
  if [ "$m" = prometheus ]; then
    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
    if command -v update-rc.d >/dev/null; then update-rc.d prometheus disable >/dev/null 2>&1 || true; fi
  fi
done
