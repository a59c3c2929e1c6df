import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_ADMIN_SOCKET, resolveSocket } from '../../src/cli/client';

/**
 * How netvolctl finds the daemon's admin socket for each install: the host service (its config in
 * /etc/netvol/config.yaml), the managed plugin (the default stateDir, bind-mounted from the host at
 * the same path), a developer's run (--config / NETVOL_CONFIG, or --socket / NETVOL_ADMIN_SOCKET).
 */
const exec = promisify(execFile);
let dir: string;
const saved = { socket: process.env.NETVOL_ADMIN_SOCKET, config: process.env.NETVOL_CONFIG };
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvolctl-socket-'));
});
beforeEach(() => {
  delete process.env.NETVOL_ADMIN_SOCKET;
  delete process.env.NETVOL_CONFIG;
});
afterAll(async () => {
  if (saved.socket === undefined) delete process.env.NETVOL_ADMIN_SOCKET;
  else process.env.NETVOL_ADMIN_SOCKET = saved.socket;
  if (saved.config === undefined) delete process.env.NETVOL_CONFIG;
  else process.env.NETVOL_CONFIG = saved.config;
  await fs.rm(dir, { recursive: true, force: true });
});

async function config(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, text);
  return file;
}

test('with no host config, the default is the default stateDir\'s socket, where a managed plugin\'s bind-mounted /var/lib/netvol shows it on the host', async () => {
  expect(await resolveSocket({}, path.join(dir, 'absent.yaml'))).toBe('/var/lib/netvol/admin.sock');
  expect(DEFAULT_ADMIN_SOCKET).toBe('/var/lib/netvol/admin.sock');
  const plugin = JSON.parse(await fs.readFile(path.join(__dirname, '..', '..', 'plugin-config', 'config.json'), 'utf8')) as { mounts: Array<{ source: string; destination: string }> };
  expect(plugin.mounts).toContainEqual(expect.objectContaining({ source: '/var/lib/netvol', destination: '/var/lib/netvol' }));
});

test('the host service\'s config file is read when present: its stateDir or adminSocket decides', async () => {
  const host = await config('host.yaml', 'stateDir: /srv/nv\n');
  expect(await resolveSocket({}, host)).toBe('/srv/nv/admin.sock');
  const custom = await config('custom.yaml', 'adminSocket: /run/nv-admin.sock\n');
  expect(await resolveSocket({}, custom)).toBe('/run/nv-admin.sock');
});

test('--socket beats NETVOL_ADMIN_SOCKET, which beats --config, which beats NETVOL_CONFIG and the host config', async () => {
  const host = await config('host2.yaml', 'stateDir: /srv/host\n');
  const given = await config('given.yaml', 'stateDir: /srv/given\n');
  const env = await config('env.yaml', 'stateDir: /srv/env\n');
  process.env.NETVOL_CONFIG = env;
  expect(await resolveSocket({}, host)).toBe('/srv/env/admin.sock');
  expect(await resolveSocket({ config: given }, host)).toBe('/srv/given/admin.sock');
  process.env.NETVOL_ADMIN_SOCKET = '/run/env.sock';
  expect(await resolveSocket({ config: given }, host)).toBe('/run/env.sock');
  expect(await resolveSocket({ socket: '/run/flag.sock', config: given }, host)).toBe('/run/flag.sock');
});

test('a config that turns the admin socket off, or cannot be read, is a clear error naming the file', async () => {
  const off = await config('off.yaml', 'adminSocket: ""\n');
  await expect(resolveSocket({ config: off })).rejects.toThrow(`the admin socket is turned off in ${off}`);
  const bad = await config('bad.yaml', 'stateDir: relative\n');
  await expect(resolveSocket({}, bad)).rejects.toThrow(/bad\.yaml[\s\S]*--socket or NETVOL_ADMIN_SOCKET/);
});

test('the built netvolctl is executable, so a symlink on PATH runs it (the host-service install)', async () => {
  const built = path.join(__dirname, '..', '..', 'dist', 'cli', 'index.js');
  const st = await fs.stat(built);
  expect(st.mode & 0o111).toBe(0o111);
  expect((await fs.readFile(built, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
  const link = path.join(dir, 'netvolctl');
  await fs.symlink(built, link);
  const { stdout } = await exec(link, ['--help']);
  expect(stdout).toMatch(/Usage: netvolctl/);
  expect(stdout).toMatch(/\bgc\b/);
});

test('a developer\'s checkout runs it as `npx netvolctl` (package.json bin) once built', async () => {
  const repo = path.join(__dirname, '..', '..');
  const pkg = JSON.parse(await fs.readFile(path.join(repo, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  expect(pkg.bin.netvolctl).toBe('dist/cli/index.js');
  const { stdout } = await exec('npx', ['--no-install', 'netvolctl', 'gc', '--help'], { cwd: repo, timeout: 60_000 });
  expect(stdout).toMatch(/Usage: netvolctl gc/);
}, 90_000);
