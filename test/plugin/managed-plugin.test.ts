/**
 * netvol as a managed plugin in a real, private dockerd (Debian docker.io 20.10): built from this
 * repository by scripts/plugin-build.sh, pointed with `docker plugin set` at a state dir and a
 * config dir of this run, enabled, and used by containers. The tests run in order and share the
 * plugin, as a user's plugin would live through these steps.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUSYBOX_IMAGE, DOCKER_CLI, Dockerd, removeTree, run, startDockerd, waitFor } from '../harness/dockerd';
import { netvolctl } from '../e2e/support/netvolctl';
import { startSshd, Sshd } from '../harness/sshd';
import { buildPlugin, detachLoopsBackedBy, fileIdentity, inspectPlugin, REPO, ROOTFS_IMAGE, VERSION } from './support/plugin';

jest.setTimeout(180_000);

const RUN = crypto.randomBytes(4).toString('hex');
const PLUGIN = `netvol-p${RUN}:${VERSION}`;
const name = (what: string): string => `p${RUN}-${what}`;

let d: Dockerd;
let sshd: Sshd;
let work: string;
let stateDir: string;
let configDir: string;
/** Image files of this run's volumes, to release loop devices a stopped plugin left attached. */
const images = new Set<string>();
const containers: string[] = [];
const volumes: string[] = [];

function firstWord(s: string): string {
  return s.trim().split(/\s+/)[0] ?? '';
}

/** Runs busybox with the volume at /data; resolves with the result whatever the exit code. */
function onVolume(volume: string, script: string) {
  return d.runContainer(['--rm', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sh', '-c', script]);
}

async function md5OnVolume(volume: string, file: string): Promise<string> {
  const r = await onVolume(volume, `md5sum /data/${file}`);
  if (r.code !== 0) throw new Error(`md5sum of ${file} on ${volume} failed: ${r.stderr}`);
  return firstWord(r.stdout);
}

async function createVolume(volume: string, opts: string[] = []): Promise<void> {
  await d.dockerOk(['volume', 'create', '-d', PLUGIN, ...opts, volume]);
  volumes.push(volume);
  const img = path.join(stateDir, 'volumes', volume, 'data.img');
  if (fs.existsSync(img)) images.add(fileIdentity(img));
}

async function volumeInspect(volume: string): Promise<{ Driver: string; Status: Record<string, unknown> }> {
  return JSON.parse(await d.dockerOk(['volume', 'inspect', volume]))[0];
}

/** The plugin's log lines in dockerd's log (dockerd prefixes them with plugin=<id>). */
function pluginLog(pluginId: string): string[] {
  return fs
    .readFileSync(d.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`plugin=${pluginId}`));
}

beforeAll(async () => {
  work = fs.mkdtempSync('/tmp/nvp-');
  stateDir = path.join(work, 'state');
  configDir = path.join(work, 'config');
  fs.mkdirSync(stateDir);
  fs.mkdirSync(configDir);
  [d, sshd] = await Promise.all([startDockerd(), startSshd()]);

  // The plugin reads this through its "config" mount (/etc/netvol), named by NETVOL_CONFIG.
  fs.copyFileSync(sshd.userKeyFile, path.join(configDir, 'sftp_key'));
  fs.chmodSync(path.join(configDir, 'sftp_key'), 0o600);
  fs.writeFileSync(
    path.join(configDir, 'config.yaml'),
    [
      'mountRoot: /mnt/volumes # the plugin\'s propagatedMount',
      'stateDir: /var/lib/netvol',
      'backends:',
      '  local:',
      '    type: local',
      '    path: /var/lib/netvol/volumes',
      '  remote:',
      '    type: sftp',
      `    host: ${sshd.host}`,
      `    port: ${sshd.port}`,
      '    username: root',
      '    privateKeyFile: /etc/netvol/sftp_key',
      `    hostKeyFingerprint: "${sshd.hostKeyFingerprint}"`,
      `    path: ${path.join(sshd.root, 'volumes')}`,
      '',
    ].join('\n'),
  );

  const built = await buildPlugin(d, PLUGIN, 40 * 60_000);
  process.stdout.write(`plugin tier: scripts/plugin-build.sh took ${built.seconds.toFixed(0)} s\n`);
  await d.dockerOk([
    'plugin', 'set', PLUGIN,
    `state.source=${stateDir}`,
    `config.source=${configDir}`,
    'NETVOL_CONFIG=/etc/netvol/config.yaml',
  ]);
  await d.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
}, 45 * 60_000);

afterAll(async () => {
  if (d) {
    for (const c of containers) await d.docker(['rm', '-f', c]).catch(() => undefined);
    for (const v of volumes) await d.docker(['volume', 'rm', '-f', v]).catch(() => undefined);
    await d.docker(['plugin', 'disable', '-f', PLUGIN]).catch(() => undefined);
    await d.docker(['plugin', 'rm', '-f', PLUGIN]).catch(() => undefined);
    await d.stop();
  }
  detachLoopsBackedBy(images);
  await sshd?.cleanup();
  if (work) removeTree(work);
}, 300_000);

test('plugin-build.sh creates the plugin, and it enables with the state and config dirs given by `docker plugin set`', async () => {
  const p = await inspectPlugin(d, PLUGIN);
  expect(p.Enabled).toBe(true);
  expect(p.Config.Interface).toEqual({ Socket: 'netvol.sock', Types: ['docker.volumedriver/1.0'] });
  expect(p.Config.PropagatedMount).toBe('/mnt/volumes');
  expect(p.Settings.Mounts).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ Name: 'state', Source: stateDir, Destination: '/var/lib/netvol' }),
      expect.objectContaining({ Name: 'config', Source: configDir, Destination: '/etc/netvol' }),
    ]),
  );
  // It read the config of this run (both backends) and keeps its state in the host's state dir.
  const started = await waitFor('the plugin to log that it listens', () => pluginLog(p.Id).find((l) => l.includes('netvol listening')), 30_000);
  expect(started).toContain('remote(sftp)');
  expect(fs.existsSync(path.join(stateDir, 'state.json'))).toBe(true);
  // The runtime's Node is the one netvol is built for (engines: node >= 20).
  const node = await d.dockerOk(['run', '--rm', '--network', 'none', '--entrypoint', '/usr/bin/node', ROOTFS_IMAGE, '--version']);
  expect(Number(/^v(\d+)\./.exec(node)?.[1])).toBeGreaterThanOrEqual(20);
  // Every data-path tool is in the image, and the userspace NFS server (no native code) loads.
  const tools = await d.runContainer(['--rm', '--entrypoint', '/bin/sh', ROOTFS_IMAGE, '-c',
    'for t in mount umount losetup mkfs.ext4 mkfs.xfs sshfs mount.nfs; do command -v $t >/dev/null || echo "missing $t"; done; ' +
    'node -e "require(\'/opt/netvol/dist/fuse-nfs/filesystem.js\')" && echo fuse-nfs-loads']);
  expect(tools.stderr).toBe('');
  expect(tools.stdout).toBe('fuse-nfs-loads\n');
});

// netvolctl on a host where netvol runs as this managed plugin (one plugin build serves both): the
// host's netvolctl reaches the plugin's admin socket through the state folder the plugin
// bind-mounts at the same path, and packaging/netvolctl-plugin runs the plugin's own netvolctl in
// its mount namespace (a host without Node).
test('the plugin\'s admin socket shows on the host in its state folder, root-only, and the host\'s netvolctl lists the plugin\'s volumes through it', async () => {
  const volume = name('ctl');
  volumes.push(volume);
  await d.dockerOk(['volume', 'create', '-d', PLUGIN, '-o', 'size=32M', volume]);
  images.add(fileIdentity(path.join(stateDir, 'volumes', volume, 'data.img')));
  const socket = path.join(stateDir, 'admin.sock');
  await waitFor('the plugin\'s admin socket', () => fs.existsSync(socket) || undefined, 30_000);
  const st = fs.lstatSync(socket);
  expect(st.isSocket()).toBe(true);
  expect(st.mode & 0o777).toBe(0o600);
  expect(st.uid).toBe(0);
  const r = await netvolctl(['ls', '--socket', socket, '--json']);
  expect(r.stderr).toBe('');
  const listed = JSON.parse(r.stdout) as { volumes: Array<{ name: string; layout: string; sizeBytes: number }> };
  expect(listed.volumes).toContainEqual(expect.objectContaining({ name: volume, layout: 'image', sizeBytes: 32 * 1024 * 1024 }));
});

test('packaging/netvolctl-plugin runs the plugin\'s own netvolctl, which finds the socket at its default path', async () => {
  const script = path.join(REPO, 'packaging', 'netvolctl-plugin');
  expect(fs.statSync(script).mode & 0o111).toBe(0o111);
  const r = await run(script, ['inspect', name('ctl'), '--json'], { env: { ...process.env, DOCKER: DOCKER_CLI, DOCKER_HOST: d.host, NETVOL_PLUGIN: PLUGIN }, timeoutMs: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ name: name('ctl'), state: 'live', layout: 'image' });
  const missing = await run(script, ['ls'], { env: { ...process.env, DOCKER: DOCKER_CLI, DOCKER_HOST: d.host, NETVOL_PLUGIN: 'no-such-plugin:1' }, timeoutMs: 60_000 });
  expect(missing.code).not.toBe(0);
});

test('a local volume with size: a write past the quota fails inside a container with "No space left on device", an earlier file keeps its checksum', async () => {
  const vol = name('quota');
  await createVolume(vol, ['-o', 'size=32M']);
  // The image file lives in the host's state dir (the plugin's "state" mount): data outlives the plugin.
  expect(fs.statSync(path.join(stateDir, 'volumes', vol, 'data.img')).size).toBe(32 * 1024 * 1024);

  const first = await onVolume(vol, 'dd if=/dev/urandom of=/data/keep bs=1M count=8 2>/dev/null && sync && md5sum /data/keep');
  expect(first.code).toBe(0);
  const keep = firstWord(first.stdout);
  expect(keep).toMatch(/^[0-9a-f]{32}$/);

  const big = await onVolume(vol, 'dd if=/dev/zero of=/data/big bs=1M count=64 && sync');
  expect(big.code).not.toBe(0);
  expect(big.stderr).toMatch(/No space left on device/);
  expect(await md5OnVolume(vol, 'keep')).toBe(keep);
  expect((await volumeInspect(vol)).Status).toMatchObject({ backend: 'local', layout: 'image', sizeBytes: 32 * 1024 * 1024 });
});

test('an sftp volume: one container writes, another reads it back, and the file is on the SSH server', async () => {
  const vol = name('sftp');
  await createVolume(vol, ['-o', 'backend=remote']);
  const write = await onVolume(vol, 'echo "written through the managed plugin" > /data/msg');
  expect(write.code).toBe(0);
  const read = await onVolume(vol, 'cat /data/msg');
  expect(read.code).toBe(0);
  expect(read.stdout).toBe('written through the managed plugin\n');
  expect(fs.readFileSync(path.join(sshd.root, 'volumes', vol, 'data', 'msg'), 'utf8')).toBe('written through the managed plugin\n');
  expect((await volumeInspect(vol)).Status).toMatchObject({ backend: 'remote', layout: 'directory' });
});

test('disable, `docker plugin set NETVOL_LOG_LEVEL=debug`, enable: the setting is live and every volume is still there with its data', async () => {
  const quota = name('quota');
  const sftp = name('sftp');
  const keep = await md5OnVolume(quota, 'keep');
  const before = await inspectPlugin(d, PLUGIN);

  // dockerd counts volumes as references to their plugin: -f disables it anyway (volumes stay).
  const refused = await d.docker(['plugin', 'disable', PLUGIN]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/in use/);
  await d.dockerOk(['plugin', 'disable', '-f', PLUGIN]);
  await d.dockerOk(['plugin', 'set', PLUGIN, 'NETVOL_LOG_LEVEL=debug']);
  const logLinesBefore = pluginLog(before.Id).length;
  await d.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });

  const after = await inspectPlugin(d, PLUGIN);
  expect(after.Enabled).toBe(true);
  expect(after.Settings.Env).toContain('NETVOL_LOG_LEVEL=debug');
  for (const v of [quota, sftp]) expect((await volumeInspect(v)).Driver).toBe(PLUGIN);
  // The new log level is in force: requests are now logged at debug.
  await waitFor(
    'a debug line from the re-enabled plugin',
    () => pluginLog(after.Id).slice(logLinesBefore).some((l) => l.includes('\\"level\\":\\"debug\\"')),
    30_000,
  );
  expect(await md5OnVolume(quota, 'keep')).toBe(keep);
  const read = await onVolume(sftp, 'cat /data/msg');
  expect(read.stdout).toBe('written through the managed plugin\n');
});

test('dockerd restarted with the plugin enabled: a container with --restart always comes back with its volume and data', async () => {
  const vol = name('restart');
  await createVolume(vol, ['-o', 'size=32M']);
  const ctr = name('always');
  await d.dockerOk([
    'run', '-d', '--name', ctr, '--network', 'none', '--pull', 'never', '--restart', 'always',
    '-v', `${vol}:/data`, BUSYBOX_IMAGE,
    'sh', '-c', 'echo started >> /data/starts && sync && exec sleep 100000',
  ]);
  containers.push(ctr);
  await waitFor('the container to record its first start', async () => (await d.docker(['exec', ctr, 'cat', '/data/starts'])).stdout === 'started\n', 30_000);
  const wrote = await d.dockerOk(['exec', ctr, 'sh', '-c', 'dd if=/dev/urandom of=/data/before bs=1M count=4 2>/dev/null && sync && md5sum /data/before']);
  const md5 = firstWord(wrote);

  await d.restart();

  const p = await inspectPlugin(d, PLUGIN);
  expect(p.Enabled).toBe(true);
  await waitFor(
    'the container to run again and record its second start',
    async () => (await d.docker(['exec', ctr, 'cat', '/data/starts'])).stdout === 'started\nstarted\n',
    90_000,
    500,
  );
  const again = await d.dockerOk(['exec', ctr, 'md5sum', '/data/before']);
  expect(firstWord(again)).toBe(md5);
  expect(await d.dockerOk(['inspect', '-f', '{{.State.Running}} {{.RestartCount}}', ctr])).toMatch(/^true /);
});

test('with NETVOL_CONFIG back at its default, the config baked into the plugin serves the same local volumes from the state dir', async () => {
  const quota = name('quota');
  const keep = await md5OnVolume(quota, 'keep');
  await d.dockerOk(['rm', '-f', name('always')]);
  const before = await inspectPlugin(d, PLUGIN);
  const logLinesBefore = pluginLog(before.Id).length;

  await d.dockerOk(['plugin', 'disable', '-f', PLUGIN]);
  await d.dockerOk(['plugin', 'set', PLUGIN, 'NETVOL_CONFIG=/opt/netvol/config.plugin.yaml']);
  await d.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });

  const started = await waitFor(
    'the plugin to log that it listens with the built-in config',
    () => pluginLog(before.Id).slice(logLinesBefore).find((l) => l.includes('netvol listening')),
    30_000,
  );
  expect(started).toContain('local(local)');
  expect(started).not.toContain('remote(sftp)');
  expect((await volumeInspect(quota)).Status).toMatchObject({ backend: 'local', layout: 'image' });
  expect(await md5OnVolume(quota, 'keep')).toBe(keep);
});
