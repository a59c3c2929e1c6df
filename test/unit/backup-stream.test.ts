/**
 * Backup and restore through the admin API's routes and the built netvolctl, over a real Unix
 * socket and real GNU tar, with the driver's holds replaced by plain folders (the e2e tier runs the
 * same commands against a real daemon and dockerd). What is tested here is the streaming: headers,
 * the success trailer, a cut stream failing loudly, the client going away, the temp-file rename.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { createAdminApp } from '../../src/admin';
import type { AdminApi, BackupStream, VolumeHold } from '../../src/driver';
import { startBackup } from '../../src/driver/backup';
import type { DriverParts } from '../../src/driver/operations';
import { restoreInto, verifyAgainst } from '../../src/driver/restore';
import { NetvolError } from '../../src/errors';
import { createLogger } from '../../src/log';

const exec = promisify(execFile);
const BUILT = path.join(__dirname, '..', '..', 'dist', 'cli', 'index.js');

async function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BUILT, ...args], { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Every regular file, symlink and folder below `dir` with what a restore must keep. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(dir, rel))) {
      const p = path.join(rel, e);
      const st = await fs.lstat(path.join(dir, p));
      if (st.isSymbolicLink()) out[p] = `link ${await fs.readlink(path.join(dir, p))}`;
      else if (st.isDirectory()) {
        out[p] = `dir ${(st.mode & 0o7777).toString(8)}`;
        await walk(p);
      } else {
        const sum = crypto.createHash('sha256').update(await fs.readFile(path.join(dir, p))).digest('hex');
        out[p] = `file ${(st.mode & 0o7777).toString(8)} ${st.size} links=${st.nlink} ${sum}`;
      }
    }
  };
  await walk('');
  return out;
}

describe('netvolctl backup and restore over the admin API', () => {
  let root: string;
  let socket: string;
  let server: http.Server;
  const volumes = new Map<string, string>();
  let holds = 0;
  /** Per backup request: whether the daemon's tar was given the client's file (a direct transfer). */
  const backupOutputs: boolean[] = [];
  /** Per restore request: what the daemon's tar read, the client's file or the request's stream. */
  const restoreInputs: string[] = [];
  /** Set by a test to replace the real backup with a broken stream. */
  let brokenBackup: (() => Promise<BackupStream>) | undefined;

  const hold = async (name: string): Promise<VolumeHold> => {
    const mountpoint = volumes.get(name);
    if (!mountpoint) throw new Error(`no volume ${name}`);
    holds += 1;
    return { name, backend: 'local', layout: 'directory', mountpoint, release: async () => void (holds -= 1) };
  };
  const parts = {
    log: createLogger('error'),
    pool: { find: () => ({ capabilities: { networked: false }, usage: async () => ({ usedBytes: 1, availableBytes: 1 }) }) },
  } as unknown as DriverParts;
  // Only what the backup and restore routes call; the rest of AdminApi is other operations'.
  const api = {
    listAll: async () => [],
    inspect: async () => {
      throw new Error('unused');
    },
    hold,
    create: async (name) => {
      const dir = path.join(root, 'vols', name);
      await fs.mkdir(dir, { recursive: true });
      volumes.set(name, dir);
    },
    backup: (name, opts) => {
      backupOutputs.push(opts.output !== undefined);
      return brokenBackup ? brokenBackup() : startBackup(parts, hold, name, opts);
    },
    restore: (name, input, opts, signal) => {
      restoreInputs.push(typeof (input as { fd?: unknown }).fd === 'number' ? 'file' : 'stream');
      return restoreInto(parts, hold, name, input, opts, signal);
    },
    verify: (name, input, signal) => verifyAgainst(parts, hold, name, input, signal),
  } satisfies Partial<AdminApi>;

  beforeAll(async () => {
    await fs.access(BUILT);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-backup-'));
    socket = path.join(root, 'admin.sock');
    server = http.createServer(createAdminApp(api as unknown as AdminApi, createLogger('error')));
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    const src = path.join(root, 'vols', 'src');
    await fs.mkdir(path.join(src, 'sub', 'deep'), { recursive: true });
    volumes.set('src', src);
    await fs.writeFile(path.join(src, 'a.txt'), 'hello\n');
    await fs.chmod(path.join(src, 'a.txt'), 0o640);
    await fs.writeFile(path.join(src, 'sub', 'deep', 'random.bin'), crypto.randomBytes(3 * 1024 * 1024));
    await fs.link(path.join(src, 'a.txt'), path.join(src, 'sub', 'hard.txt'));
    await fs.symlink('../a.txt', path.join(src, 'sub', 'link'));
    await fs.symlink('/nowhere/at/all', path.join(src, 'dangling'));
    await fs.chmod(path.join(src, 'sub'), 0o750);
    const sparse = await fs.open(path.join(src, 'sparse.img'), 'w');
    await sparse.write('end', 64 * 1024 * 1024);
    await sparse.close();
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await fs.rm(root, { recursive: true, force: true });
  });
  afterEach(() => {
    brokenBackup = undefined;
    backupOutputs.length = 0;
    restoreInputs.length = 0;
  });

  it('on the daemon\'s host, tar writes and reads FILE itself; --no-direct streams the same archive through the socket', async () => {
    const direct = path.join(root, 'direct.tar');
    const streamed = path.join(root, 'streamed.tar');
    expect((await ctl(['backup', 'src', '-o', direct, '-s', socket, '-q'])).code).toBe(0);
    expect((await ctl(['backup', 'src', '-o', streamed, '-s', socket, '-q', '--no-direct'])).code).toBe(0);
    expect(backupOutputs).toEqual([true, false]);
    expect((await fs.stat(direct)).mode & 0o777).toBe(0o600);
    const list = async (f: string) => (await exec('tar', ['-tvf', f])).stdout.split('\n').sort();
    expect(await list(direct)).toEqual(await list(streamed));
    expect((await ctl(['restore', direct, 'd1', '--create', '-s', socket])).code).toBe(0);
    expect((await ctl(['restore', streamed, 'd2', '--create', '-s', socket, '--no-direct'])).code).toBe(0);
    expect(restoreInputs).toEqual(['file', 'stream']);
    expect(await tree(volumes.get('d1')!)).toEqual(await tree(volumes.get('src')!));
    expect(await tree(volumes.get('d2')!)).toEqual(await tree(volumes.get('src')!));
  });

  it('restore reads archives of any record size that plain tar writes, directly and streamed', async () => {
    let n = 0;
    for (const blocking of ['20', '256']) {
      const file = path.join(root, `plain-b${blocking}.tar`);
      await exec('tar', ['-c', '-b', blocking, '-f', file, '-C', volumes.get('src')!, '.']);
      for (const mode of [[], ['--no-direct']]) {
        const name = `rec${n++}`;
        expect((await ctl(['restore', file, name, '--create', '-q', '-s', socket, ...mode])).code).toBe(0);
        expect(await tree(volumes.get(name)!)).toEqual(await tree(volumes.get('src')!));
      }
    }
    expect(restoreInputs).toEqual(['file', 'stream', 'file', 'stream']);
  });

  it('a client in another pid namespace, whose file the daemon cannot open, sends the archive through the socket instead', async () => {
    // As netvolctl on the host beside a managed plugin: the daemon's /proc/PID is another process.
    const inNs = async (args: string[]) => {
      try {
        const { stdout, stderr } = await exec('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, BUILT, ...args], { encoding: 'utf8' });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const file = path.join(root, 'other-ns.tar.zst');
    expect((await inNs(['backup', 'src', '-o', file, '-s', socket, '-q'])).code).toBe(0);
    expect(backupOutputs).toEqual([false]);
    expect((await fs.readFile(file)).subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect((await inNs(['restore', file, 'ns1', '--create', '-s', socket, '-q'])).code).toBe(0);
    expect(restoreInputs).toEqual(['stream']);
    expect(await tree(volumes.get('ns1')!)).toEqual(await tree(volumes.get('src')!));
  });

  it('a direct backup whose tar fails fails in netvolctl with the daemon\'s sentence, and no FILE is left', async () => {
    brokenBackup = async () => {
      let fail: (e: Error) => void = () => undefined;
      const finished = new Promise<{ warnings: string[] }>((_r, reject) => (fail = reject));
      setTimeout(() => fail(new NetvolError('COMMAND_FAILED', 'volume src: the backup failed: tar: ./x: Cannot open: Permission denied', { volume: 'src' })), 700);
      return { volume: 'src', written: () => 4096, pointInTime: true, method: 'snapshot', finished, abort: () => undefined, estimatedBytes: 1 << 20 };
    };
    const dir = path.join(root, 'out-direct');
    await fs.mkdir(dir);
    const b = await ctl(['backup', 'src', '-o', path.join(dir, 'x.tar'), '-s', socket]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/the backup of src failed: volume src: the backup failed: tar: .*Permission denied; .*x\.tar was not written/);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('backup -o FILE then restore --create gives the same tree (modes, hard and symbolic links, a sparse file)', async () => {
    const file = path.join(root, 'src.tar');
    const b = await ctl(['backup', 'src', '-o', file, '-s', socket]);
    expect(b).toMatchObject({ code: 0, stdout: '' });
    expect(b.stderr).toContain('not point in time');
    // Plain tar reads it.
    const listing = (await exec('tar', ['-tvf', file])).stdout;
    expect(listing).toContain('./sub/link -> ../a.txt');
    expect(listing).toMatch(/\.\/sub\/hard\.txt link to \.\/a\.txt|\.\/a\.txt link to \.\/sub\/hard\.txt/);
    const r = await ctl(['restore', file, 'copy1', '--create', '-s', socket]);
    expect(r.code).toBe(0);
    expect(await tree(volumes.get('copy1')!)).toEqual(await tree(volumes.get('src')!));
    const st = await fs.stat(path.join(volumes.get('copy1')!, 'sparse.img'));
    expect(st.blocks * 512).toBeLessThan(1024 * 1024); // the hole stayed a hole
    expect(holds).toBe(0);
  });

  it('a .zst file is compressed with zstd and restored from it', async () => {
    const file = path.join(root, 'src.tar.zst');
    expect((await ctl(['backup', 'src', '-o', file, '-s', socket, '-q'])).code).toBe(0);
    expect((await fs.readFile(file)).subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect((await ctl(['restore', file, 'copy2', '--create', '--verify', '-s', socket])).code).toBe(0);
    expect(await tree(volumes.get('copy2')!)).toEqual(await tree(volumes.get('src')!));
  });

  it('backup to stdout writes the archive there', async () => {
    const { stdout } = await exec(process.execPath, [BUILT, 'backup', 'src', '-s', socket], { maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' });
    expect(stdout.length).toBeGreaterThan(3 * 1024 * 1024);
    expect(stdout.subarray(257, 262).toString()).toBe('ustar');
  });

  it('restore refuses a volume that is not empty unless --force, and --verify finds a changed byte', async () => {
    const file = path.join(root, 'src.tar');
    await fs.access(file);
    const refused = await ctl(['restore', file, 'copy1', '-s', socket]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/volume copy1 is not empty .*--force/);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    const changed = path.join(volumes.get('copy1')!, 'sub', 'deep', 'random.bin');
    const h = await fs.open(changed, 'r+');
    const [byte] = (await h.read(Buffer.alloc(1), 0, 1, 1000)).buffer;
    await h.write(Buffer.from([byte ^ 0xff]), 0, 1, 1000);
    await h.close();
    const v = await ctl(['restore', file, 'copy1', '--force', '--verify', '-s', socket]);
    expect(v.code).toBe(0); // --force restored the file again, so it verifies
    await fs.writeFile(path.join(volumes.get('copy1')!, 'a.txt'), 'hellO\n');
    const verify = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ socketPath: socket, method: 'POST', path: '/v1/volumes/copy1/verify' }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      void fs.readFile(file).then((buf) => req.end(buf));
    });
    expect(verify.status).toBe(200);
    expect(JSON.parse(verify.body)).toMatchObject({ ok: false, differences: expect.arrayContaining([expect.stringMatching(/(a|hard)\.txt: Contents differ/)]) });
  });

  it('a truncated archive fails the restore and says the volume is partly restored', async () => {
    const whole = await fs.readFile(path.join(root, 'src.tar'));
    const cut = path.join(root, 'cut.tar');
    await fs.writeFile(cut, whole.subarray(0, 2 * 1024 * 1024 + 100));
    const r = await ctl(['restore', cut, 'copy3', '--create', '-s', socket]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/restore failed: tar: .*(Unexpected EOF|unexpected end)/i);
    expect(holds).toBe(0);
  });

  it('a stream the daemon cuts off fails the backup, and no FILE is left, not even the temporary one', async () => {
    brokenBackup = async () => {
      const stream = new PassThrough();
      stream.write(Buffer.alloc(256 * 1024, 1));
      let fail: (e: Error) => void = () => undefined;
      const finished = new Promise<{ warnings: string[] }>((_r, reject) => (fail = reject));
      setTimeout(() => fail(new Error('tar died')), 200);
      return { volume: 'src', stream, written: () => 0, pointInTime: true, method: 'snapshot', finished, abort: () => undefined, estimatedBytes: 1 << 20 };
    };
    const dir = path.join(root, 'out');
    await fs.mkdir(dir);
    const b = await ctl(['backup', 'src', '-o', path.join(dir, 'x.tar'), '-s', socket]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/the backup of src failed: .*x\.tar was not written/);
    expect(await fs.readdir(dir)).toEqual([]);
    const piped = await ctl(['backup', 'src', '-s', socket]);
    expect(piped.code).toBe(1);
    expect(piped.stderr).toContain('the archive written to stdout is incomplete');
  });

  it('a client that goes away stops tar and gives the hold back', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath: socket, path: '/v1/volumes/src/backup' }, (res) => {
        expect(res.headers['x-netvol-point-in-time']).toBe('no');
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', resolve);
      const t = setTimeout(() => reject(new Error('no data')), 10_000);
      req.on('close', () => clearTimeout(t));
      req.end();
    });
    for (let i = 0; i < 50 && holds > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(holds).toBe(0);
  });

  it('errors before the stream are JSON sentences naming the volume', async () => {
    const b = await ctl(['backup', 'nope', '-o', path.join(root, 'n.tar'), '-s', socket]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^netvolctl: .*nope/);
    await expect(fs.access(path.join(root, 'n.tar'))).rejects.toThrow();
  });
});
