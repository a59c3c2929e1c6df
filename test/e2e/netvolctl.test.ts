/**
 * netvolctl ls and inspect against a running daemon whose volumes a real dockerd uses: live volumes
 * (one in use by a running container), a retained one and an archived one; the admin socket itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { VolumeDetails } from '../../src/driver';
import { PLUGIN_DIR } from '../harness/netvol';
import { netvolctl } from './support/netvolctl';
import { BUSYBOX_IMAGE, MiB, startWorld, stopWorld, uniqueName, World } from './support/world';

jest.setTimeout(180_000);

let w: World;
let socket: string;
const live = uniqueName('ls-live');
const img = uniqueName('ls-img');
const kept = uniqueName('ls-kept');
const arch = uniqueName('ls-arch');
let container = '';

beforeAll(async () => {
  w = await startWorld();
  socket = path.join(w.nv.stateDir, 'admin.sock');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, live]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', '-o', 'onRemove=retain', img]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'onRemove=retain', kept]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'onRemove=archive', arch]);
  for (const v of [kept, arch]) {
    const r = await w.d.runContainer(['--rm', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo keep > /data/f']);
    expect(r.code).toBe(0);
    await w.d.dockerOk(['volume', 'rm', v]);
  }
  container = await w.d.dockerOk(['run', '-d', '--network', 'none', '--pull', 'never', '-v', `${img}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/zero of=/data/four bs=1M count=4 2>/dev/null; sync; sleep 600']);
  // The container has written its 4 MiB once the file has that size.
  for (let i = 0; i < 100; i += 1) {
    const r = await w.d.docker(['exec', container, 'ls', '-l', '/data/four']);
    if (r.code === 0 && r.stdout.includes(String(4 * MiB))) break;
    await new Promise((res) => setTimeout(res, 200));
  }
}, 180_000);

afterAll(async () => {
  await stopWorld(w);
}, 300_000);

describe('the admin socket', () => {
  test('is <stateDir>/admin.sock, a socket of mode 0600 owned by root, and not in the folder dockerd scans for plugins', () => {
    const st = fs.lstatSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(0);
    expect(path.relative(PLUGIN_DIR, socket).startsWith('..')).toBe(true);
    expect(fs.readdirSync(PLUGIN_DIR).some((f) => f.startsWith(w.plugin) && f !== `${w.plugin}.sock`)).toBe(false);
  });
});

describe('netvolctl ls', () => {
  test('--json lists live, retained and archived volumes with state, backend, layout, size, use, where attached, health and onRemove', async () => {
    const r = await netvolctl(['ls', '--socket', socket, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { volumes } = JSON.parse(r.stdout) as { volumes: VolumeDetails[] };
    const byName = (n: string) => volumes.filter((v) => v.name === n);
    expect(byName(live)).toEqual([expect.objectContaining({ state: 'live', backend: 'local', layout: 'directory', onRemove: 'delete', mountCount: 0, attachedOn: [] })]);
    const [i] = byName(img);
    expect(i).toMatchObject({ state: 'live', backend: 'local', layout: 'image', fs: 'ext4', sizeBytes: 32 * MiB, onRemove: 'retain', mountCount: 1, healthy: true });
    expect(i.attachedOn).toEqual([w.nv.config.hostId]);
    expect(i.usedBytes).toBeGreaterThanOrEqual(4 * MiB);
    expect(i.usedBytes).toBeLessThan(32 * MiB);
    expect(byName(kept)).toEqual([expect.objectContaining({ state: 'retained', backend: 'local', layout: 'directory', onRemove: 'retain', folder: kept, attachedOn: [] })]);
    const archived = byName(arch);
    expect(archived).toHaveLength(1);
    expect(archived[0]).toMatchObject({ state: 'archived', backend: 'local', layout: 'directory', onRemove: 'archive' });
    expect(archived[0].folder.startsWith(`${arch}.archive-`)).toBe(true);
  });

  test('the table has one row per volume with its state beside the layout, size, use and health', async () => {
    const r = await netvolctl(['ls', '--socket', socket]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['VOLUME', 'BACKEND', 'LAYOUT', 'SIZE', 'USED', 'USE%', 'ATTACHED ON', 'LEASE', 'HEALTH', 'ON REMOVE']);
    const row = (n: string) => lines.find((l) => l.startsWith(`${n} `)) ?? '';
    expect(row(img)).toMatch(/local\s+image\s+32\.0 MiB\s+[\d.]+ \S+\s+\d+%\s+\S+\s+ok\s+retain$/);
    expect(row(kept)).toMatch(/directory \(retained\)/);
    expect(row(arch)).toMatch(/directory \(archived\)/);
    expect(row(live)).toMatch(/local\s+directory\s+/);
  });

  test('--fast lists the same volumes without measuring them', async () => {
    const r = await netvolctl(['ls', '--socket', socket, '--json', '--fast']);
    expect(r.code).toBe(0);
    const names = (JSON.parse(r.stdout) as { volumes: VolumeDetails[] }).volumes.map((v) => v.name);
    for (const n of [live, img, kept, arch]) expect(names).toContain(n);
  });
});

describe('netvolctl inspect', () => {
  test('a live volume in use: --json has its details and the Status map of docker volume inspect', async () => {
    const r = await netvolctl(['inspect', img, '--socket', socket, '--json']);
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as VolumeDetails;
    expect(v).toMatchObject({ name: img, state: 'live', layout: 'image', sizeBytes: 32 * MiB, mountCount: 1, healthy: true });
    expect(v.mountpoint).toBe((JSON.parse(await w.d.dockerOk(['volume', 'inspect', img])) as Array<{ Mountpoint: string }>)[0].Mountpoint);
    expect(v.status).toMatchObject({ backend: 'local', layout: 'image' });
  });

  test('a retained volume is shown as retained; the table names each field', async () => {
    const r = await netvolctl(['inspect', kept, '--socket', socket]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^state\s+retained$/m);
    expect(r.stdout).toMatch(/^onRemove\s+retain$/m);
  });

  test('an unknown volume is a clear error naming it, with no stack trace', async () => {
    const r = await netvolctl(['inspect', 'no-such-volume-here', '--socket', socket]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^netvolctl: .*no-such-volume-here/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('an unreachable admin socket is a clear error that says how to give another one', async () => {
    const missing = path.join(w.nv.root, 'no-daemon.sock');
    const r = await netvolctl(['ls', '--socket', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`netvolctl: cannot reach the netvol daemon at ${missing}: is it running? (start it, or give its admin socket with --socket or NETVOL_ADMIN_SOCKET)\n`);
    const viaEnv = await netvolctl(['inspect', img], { NETVOL_ADMIN_SOCKET: missing });
    expect(viaEnv.stderr).toContain(`cannot reach the netvol daemon at ${missing}`);
  });

  test('netvolctl finds the socket through the daemon\'s config file (--config)', async () => {
    const r = await netvolctl(['inspect', live, '--config', w.nv.configPath, '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as VolumeDetails).name).toBe(live);
  });
});
