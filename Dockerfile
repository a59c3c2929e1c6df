# The runtime image of netvol's managed plugin; scripts/plugin-build.sh turns it into the plugin.
#
# No registry is reached during the build: BASE is a local Debian 13 (trixie) image made by
# scripts/plugin-base.sh with debootstrap, apt-get reaches Debian's mirror through
# `docker build --network host`, and the npm packages come from the repository's node_modules
# (`npm ci` on the build host, which has the npm registry configured).
# Layers are few on purpose: under dockerd's vfs storage driver every layer is a full copy.
ARG BASE=netvol-base:trixie

# --- runtime: Node and the data-path tools netvol runs; also the build stage's base -------------
FROM ${BASE} AS runtime
# Metadata first: in the classic builder each instruction commits a container, which is cheapest
# while the filesystem is smallest. The plugin's config.json sets its own entrypoint and env; these
# make the image runnable on its own (`docker run IMAGE --version`).
ENV NETVOL_CONFIG=/opt/netvol/config.plugin.yaml
ENTRYPOINT ["/usr/bin/node", "/opt/netvol/dist/main.js"]
# One apt-get for everything (each `apt-get update` costs a download and each layer a full copy).
# nodejs: Debian 13's is 20.x, the Node netvol is built and tested with (see scripts/plugin-base.sh).
# util-linux + mount: mount, umount, losetup. e2fsprogs, xfsprogs: image volumes. sshfs + fuse3: the
# sftp data path. nfs-common: mount.nfs for kernel NFS mounts. The userspace NFS data path
# (dist/fuse-nfs) needs nothing more: it speaks to /dev/fuse itself and mounts with mount(8).
# The folders are config.json's mount destinations and the socket folder, which a plugin's rootfs
# must contain.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      nodejs util-linux mount e2fsprogs xfsprogs sshfs fuse3 nfs-common >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
 && mkdir -p /run/docker/plugins /var/lib/netvol /etc/netvol /mnt/volumes

# --- build: compile TypeScript, keep production dependencies only ------------------------------
FROM runtime AS build
# One COPY of the whole context: .dockerignore lets in only package*.json, tsconfig.json, src/,
# node_modules/ and packaging/config.plugin.yaml.
COPY . /build/
# Production dependencies = the lockfile's packages not marked "dev" (what `npm prune --omit=dev`
# keeps); anything else in node_modules (dev tools, packages installed by hand) is dropped.
# node-gyp outputs (build/Release) were compiled for the build host's Node ABI and are dropped too:
# their packages fall back to N-API prebuilds or pure JS (ssh2's optional crypto).
RUN cd /build \
 && node node_modules/typescript/bin/tsc -p tsconfig.json --sourceMap false \
 && node -e ' \
      const fs = require("fs"); \
      const lock = require("./package-lock.json").packages; \
      const prod = (dir) => lock[dir] !== undefined && !lock[dir].dev; \
      for (const dir of Object.keys(lock)) if (dir && !prod(dir)) fs.rmSync(dir, { recursive: true, force: true }); \
      for (const top of fs.readdirSync("node_modules")) \
        for (const name of top.startsWith("@") ? fs.readdirSync("node_modules/" + top).map((n) => top + "/" + n) : [top]) \
          if (!prod("node_modules/" + name)) fs.rmSync("node_modules/" + name, { recursive: true, force: true });' \
 && find node_modules -type d -path '*/build/Release' -prune -exec rm -rf {} + \
 && find node_modules -depth -type d -empty -delete \
 && mkdir -p /opt/netvol \
 && cp -a package.json dist node_modules /opt/netvol/ \
 && cp packaging/config.plugin.yaml /opt/netvol/

# --- the plugin's root filesystem ---------------------------------------------------------------
FROM runtime
COPY --from=build /opt/netvol /opt/netvol
