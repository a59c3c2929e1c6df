import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { isNetvolError, NetvolError, registerSecret } from '../../src/errors';
import { createLogger } from '../../src/log';
import { createApp, listenOnSocket, SocketServer, VolumeDriverApi, VolumeView } from '../../src/plugin';
import { post } from './support/http';

/** A driver that stores nothing: it records calls and answers from a small map. */
class FakeDriver implements VolumeDriverApi {
  scope: 'local' | 'global' = 'local';
  calls: Array<{ op: string; args: unknown[] }> = [];
  volumes = new Map<string, VolumeView>();
  failNext: unknown;

  private record(op: string, ...args: unknown[]): void {
    this.calls.push({ op, args });
    if (this.failNext !== undefined) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
  }
  private known(name: unknown): VolumeView {
    const v = typeof name === 'string' ? this.volumes.get(name) : undefined;
    if (!v) throw new NetvolError('NOT_FOUND', `volume ${String(name)} not found on any netvol backend (fake)`, { volume: String(name) });
    return v;
  }
  async create(name: unknown, opts: unknown) {
    this.record('create', name, opts);
    this.volumes.set(String(name), { name: String(name), mountpoint: '', createdAt: '2026-11-23T10:00:00.000Z', status: { layout: 'directory' } });
  }
  async remove(name: unknown) {
    this.record('remove', name);
    this.volumes.delete(String(name));
  }
  async mount(name: unknown, id: unknown) {
    this.record('mount', name, id);
    return `/mnt/${this.known(name).name}`;
  }
  async unmount(name: unknown, id: unknown) {
    this.record('unmount', name, id);
  }
  async path(name: unknown) {
    this.record('path', name);
    return `/mnt/${this.known(name).name}`;
  }
  async get(name: unknown) {
    this.record('get', name);
    return this.known(name);
  }
  async list() {
    this.record('list');
    return [...this.volumes.values()];
  }
}

const ROUTES = ['Plugin.Activate', 'VolumeDriver.Capabilities', 'VolumeDriver.Create', 'VolumeDriver.Remove', 'VolumeDriver.Mount', 'VolumeDriver.Unmount', 'VolumeDriver.Path', 'VolumeDriver.Get', 'VolumeDriver.List'];

describe('protocol over a real Unix socket', () => {
  let dir: string;
  let sock: string;
  let server: SocketServer;
  let driver: FakeDriver;
  const logLines: string[] = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-proto-'));
    sock = path.join(dir, 'run', 'netvol.sock');
    driver = new FakeDriver();
    const stream = new Writable({
      write(chunk: Buffer, _e, done) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    server = await listenOnSocket(sock, createApp(driver, createLogger('debug', stream)));
  });
  afterAll(async () => {
    await server?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    driver.calls = [];
    driver.volumes.clear();
    driver.failNext = undefined;
  });

  it('Plugin.Activate with an empty body and no Content-Type answers Implements VolumeDriver', async () => {
    const a = await post(sock, '/Plugin.Activate', '');
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ Implements: ['VolumeDriver'] });
    expect(a.contentType).toContain('application/vnd.docker.plugins.v1.2+json');
  });

  it('Plugin.Activate with no body at all answers the same', async () => {
    const a = await post(sock, '/Plugin.Activate');
    expect(a.json).toEqual({ Implements: ['VolumeDriver'] });
  });

  it('Create without Content-Type passes Name and Opts to the driver', async () => {
    const a = await post(sock, '/VolumeDriver.Create', JSON.stringify({ Name: 'v1', Opts: { size: '1G' } }));
    expect(a.json).toEqual({ Err: '' });
    expect(driver.calls).toEqual([{ op: 'create', args: ['v1', { size: '1G' }] }]);
  });

  it('Create with null Opts (implicit create by a container) passes null through', async () => {
    const a = await post(sock, '/VolumeDriver.Create', '{"Name":"v2","Opts":null}');
    expect(a.json).toEqual({ Err: '' });
    expect(driver.calls).toEqual([{ op: 'create', args: ['v2', null] }]);
  });

  it('List and Capabilities accept {} bodies', async () => {
    driver.volumes.set('a', { name: 'a', mountpoint: '/mnt/a', createdAt: '2026-11-23T10:00:00Z', status: { x: 1 } });
    expect((await post(sock, '/VolumeDriver.List', '{}')).json).toEqual({
      Volumes: [{ Name: 'a', Mountpoint: '/mnt/a', CreatedAt: '2026-11-23T10:00:00Z', Status: { x: 1 } }],
      Err: '',
    });
    expect((await post(sock, '/VolumeDriver.Capabilities', '{}')).json).toEqual({ Capabilities: { Scope: 'local' } });
    driver.scope = 'global';
    expect((await post(sock, '/VolumeDriver.Capabilities', '{}')).json).toEqual({ Capabilities: { Scope: 'global' } });
    driver.scope = 'local';
  });

  it('Mount, Unmount and Path pass Name and ID and answer Mountpoint', async () => {
    driver.volumes.set('m', { name: 'm', mountpoint: '', createdAt: '', status: {} });
    expect((await post(sock, '/VolumeDriver.Mount', '{"Name":"m","ID":"abc123"}')).json).toEqual({ Mountpoint: '/mnt/m', Err: '' });
    expect((await post(sock, '/VolumeDriver.Path', '{"Name":"m"}')).json).toEqual({ Mountpoint: '/mnt/m', Err: '' });
    expect((await post(sock, '/VolumeDriver.Unmount', '{"Name":"m","ID":"abc123"}')).json).toEqual({ Err: '' });
    expect((await post(sock, '/VolumeDriver.Remove', '{"Name":"m"}')).json).toEqual({ Err: '' });
    expect(driver.calls).toEqual([
      { op: 'mount', args: ['m', 'abc123'] },
      { op: 'path', args: ['m'] },
      { op: 'unmount', args: ['m', 'abc123'] },
      { op: 'remove', args: ['m'] },
    ]);
  });

  it('Get of a name the plugin does not own answers an Err and no Volume', async () => {
    const a = await post(sock, '/VolumeDriver.Get', '{"Name":"someone-elses"}');
    expect(a.status).toBe(500);
    expect(a.json).toEqual({ Err: 'volume someone-elses not found on any netvol backend (fake)' });
  });

  it('Get echoes the Name and omits CreatedAt when the driver has none', async () => {
    driver.volumes.set('nodate', { name: 'nodate', mountpoint: '', createdAt: '', status: { layout: 'directory' } });
    const a = await post(sock, '/VolumeDriver.Get', '{"Name":"nodate"}');
    expect(a.json).toEqual({ Volume: { Name: 'nodate', Mountpoint: '', Status: { layout: 'directory' } }, Err: '' });
    expect(a.text).not.toContain('CreatedAt');
  });

  it('Get sends CreatedAt as given (RFC 3339) when there is one', async () => {
    driver.volumes.set('dated', { name: 'dated', mountpoint: '', createdAt: '2026-11-23T10:00:00.000Z', status: {} });
    const a = await post(sock, '/VolumeDriver.Get', '{"Name":"dated"}');
    expect((a.json.Volume as Record<string, unknown>).CreatedAt).toBe('2026-11-23T10:00:00.000Z');
  });

  it('a null body is treated as an empty request, not a crash', async () => {
    const a = await post(sock, '/VolumeDriver.Create', 'null');
    expect(a.json).toEqual({ Err: '' });
    expect(driver.calls).toEqual([{ op: 'create', args: [undefined, undefined] }]);
  });

  it('malformed JSON answers a JSON {Err} without calling the driver', async () => {
    const a = await post(sock, '/VolumeDriver.Create', '{"Name": "v1", ');
    expect(a.status).toBe(400);
    expect(Object.keys(a.json)).toEqual(['Err']);
    expect(a.json.Err).toMatch(/^netvol could not read the VolumeDriver.Create request: its body is not valid JSON/);
    expect(a.contentType).toContain('application/vnd.docker.plugins.v1.2+json');
    expect(driver.calls).toEqual([]);
  });

  it('a body that is not JSON is answered in our words and logged at warn with the route, its size and a short redacted excerpt, no stack', async () => {
    registerSecret('s3cr3t-in-body');
    logLines.length = 0;
    const body = `{"Name": "v1", "Opts": {"size": "1G", "note": "s3cr3t-in-body", "password": "hunter22"} ${'x'.repeat(500)}`;
    const a = await post(sock, '/VolumeDriver.Create', body);
    expect(a.status).toBe(400);
    expect(a.json).toEqual({ Err: `netvol could not read the VolumeDriver.Create request: its body is not valid JSON (${Buffer.byteLength(body)} bytes)` });
    await new Promise((r) => setImmediate(r));
    const records = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.message === 'request body is not JSON');
    expect(records).toHaveLength(1);
    const rec = records[0];
    expect(rec).toMatchObject({ level: 'warn', op: 'VolumeDriver.Create', bytes: Buffer.byteLength(body) });
    expect(typeof rec.excerpt).toBe('string');
    expect((rec.excerpt as string).length).toBeLessThanOrEqual(100);
    expect(rec.excerpt).toContain('{"Name": "v1"');
    const line = JSON.stringify(rec);
    expect(line).not.toContain('s3cr3t-in-body');
    expect(line).not.toContain('hunter22');
    expect(line).not.toMatch(/\bat \S+ \(|stack|node_modules/);
  });

  it('a binary or oversized body is logged by its size, with control characters kept out of the excerpt', async () => {
    logLines.length = 0;
    const a = await post(sock, '/VolumeDriver.Mount', '\u0000\u0001\u001b[31mjunk');
    expect(a.status).toBe(400);
    await new Promise((r) => setImmediate(r));
    const rec = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.message === 'request body is not JSON');
    expect(rec).toMatchObject({ level: 'warn', op: 'VolumeDriver.Mount' });
    expect(rec?.excerpt).not.toMatch(/[\u0000-\u001f]/);

    logLines.length = 0;
    const big = `{"Name":"v","Opts":{"x":"${'y'.repeat(1024 * 1024)}"}}`;
    const b = await post(sock, '/VolumeDriver.Create', big);
    expect(b.status).toBe(413);
    expect(b.json).toEqual({ Err: `netvol could not read the VolumeDriver.Create request: its body is larger than 1 MiB (${Buffer.byteLength(big)} bytes)` });
    await new Promise((r) => setImmediate(r));
    const tooBig = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.message === 'request body is too large');
    expect(tooBig).toMatchObject({ level: 'warn', op: 'VolumeDriver.Create', bytes: Buffer.byteLength(big) });
  });

  it('an unknown route answers a JSON {Err} naming it', async () => {
    const a = await post(sock, '/VolumeDriver.Snapshot', '{}');
    expect(a.status).toBe(404);
    expect(a.json).toEqual({ Err: 'netvol does not implement POST /VolumeDriver.Snapshot' });
  });

  it('a GET of a known route answers a JSON {Err}', async () => {
    const a = await post(sock, '/VolumeDriver.List', undefined, { method: 'GET' });
    expect(a.json).toEqual({ Err: 'netvol does not implement GET /VolumeDriver.List' });
  });

  it('a NetvolError becomes exactly its sentence in Err with status 500 (so dockerd prefixes VolumeDriver.<Call>), and is logged with its code (info: a refused option)', async () => {
    driver.failNext = new NetvolError('INVALID_OPTION', 'volume v1: invalid option "x": accepted options are size', { volume: 'v1' });
    const a = await post(sock, '/VolumeDriver.Create', '{"Name":"v1","Opts":{"x":"1"}}');
    expect(a.status).toBe(500);
    expect(a.json).toEqual({ Err: 'volume v1: invalid option "x": accepted options are size' });
    await new Promise((r) => setImmediate(r));
    const logged = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.message === 'request failed' && r.code === 'INVALID_OPTION');
    expect(logged).toMatchObject({ level: 'info', op: 'VolumeDriver.Create', volume: 'v1' });
  });

  it('an unexpected error becomes one line of Err with no stack trace, logged at error', async () => {
    const boom = new TypeError("Cannot read properties of undefined (reading 'x')\n    at Object.<anonymous> (/src/driver.ts:1:1)");
    driver.failNext = boom;
    const a = await post(sock, '/VolumeDriver.Mount', '{"Name":"v","ID":"1"}');
    expect(a.json).toEqual({ Err: "internal error in netvol: Cannot read properties of undefined (reading 'x') (see the netvol log)" });
    expect(a.text).not.toContain('at Object');
    await new Promise((r) => setImmediate(r));
    expect(logLines.map((l) => JSON.parse(l) as Record<string, unknown>).some((r) => r.level === 'error' && r.op === 'VolumeDriver.Mount' && r.code === 'INTERNAL')).toBe(true);
  });

  it('a registered secret never reaches Err', async () => {
    registerSecret('p4ssw0rd-in-error');
    driver.failNext = new NetvolError('BACKEND_AUTH', 'backend nas refused p4ssw0rd-in-error');
    const a = await post(sock, '/VolumeDriver.Get', '{"Name":"v"}');
    expect(a.json).toEqual({ Err: 'backend nas refused [redacted]' });
  });

  it.each(ROUTES)('%s answers a non-empty JSON object for empty, {}, null and junk bodies', async (route) => {
    driver.volumes.set('x', { name: 'x', mountpoint: '', createdAt: '', status: {} });
    for (const body of ['', '{}', 'null', '[]', '"str"', '{"Name":"x","ID":"i"}', '{oops']) {
      const a = await post(sock, `/${route}`, body);
      expect([route, body, typeof a.json, Array.isArray(a.json), a.text.length > 2, '__notJson' in a.json]).toEqual([route, body, 'object', false, true, false]);
    }
  });

  it('every request is logged at debug with its duration', async () => {
    logLines.length = 0;
    await post(sock, '/VolumeDriver.Capabilities', '{}');
    await new Promise((r) => setImmediate(r));
    const rec = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.message === 'request' && r.op === 'VolumeDriver.Capabilities');
    expect(rec).toMatchObject({ level: 'debug' });
    expect(typeof rec?.durationMs).toBe('number');
  });
});

describe('socket server', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-sock-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  const app = () => createApp(new FakeDriver(), createLogger('error', new Writable({ write: (_c, _e, d) => d() })));

  it('creates the socket with mode 0660 and its folder when missing', async () => {
    const file = path.join(dir, 'deep', 'er', 'mode.sock');
    const s = await listenOnSocket(file, app());
    try {
      const st = await fs.lstat(file);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o660);
      expect((await post(file, '/Plugin.Activate', '')).json).toEqual({ Implements: ['VolumeDriver'] });
    } finally {
      await s.close();
    }
  });

  it('removes the socket on close', async () => {
    const file = path.join(dir, 'close.sock');
    const s = await listenOnSocket(file, app());
    await s.close();
    await expect(fs.lstat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('restores the process umask after listening', async () => {
    const before = process.umask();
    const s = await listenOnSocket(path.join(dir, 'umask.sock'), app());
    await s.close();
    expect(process.umask()).toBe(before);
  });

  it('replaces a stale socket left by a killed process', async () => {
    const file = path.join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect((await fs.lstat(file)).isSocket()).toBe(true);
    const s = await listenOnSocket(file, app());
    try {
      expect((await post(file, '/Plugin.Activate', '')).json).toEqual({ Implements: ['VolumeDriver'] });
    } finally {
      await s.close();
    }
  });

  it('refuses to start when a live process serves the socket, and leaves it alone', async () => {
    const file = path.join(dir, 'live.sock');
    const other = net.createServer((c) => c.end());
    await new Promise<void>((r) => other.listen(file, r));
    try {
      let err: unknown;
      await listenOnSocket(file, app()).catch((e: unknown) => (err = e));
      expect(isNetvolError(err, 'CONFIG')).toBe(true);
      expect((err as Error).message).toContain(`another process already serves ${file}`);
      expect((await fs.lstat(file)).isSocket()).toBe(true);
      const stillServing = await new Promise<boolean>((resolve) => {
        const c = net.connect(file, () => {
          c.destroy();
          resolve(true);
        });
        c.on('error', () => resolve(false));
      });
      expect(stillServing).toBe(true);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('refuses to replace a file that is not a socket', async () => {
    const file = path.join(dir, 'plain.sock');
    await fs.writeFile(file, 'precious');
    await expect(listenOnSocket(file, app())).rejects.toThrow('a file that is not a socket is in the way');
    expect(await fs.readFile(file, 'utf8')).toBe('precious');
  });
});
