/**
 * Data integrity through the userspace data path over a real nfs-ganesha: a 1 GiB file's checksum,
 * fio's randomized writes with verification, a sqlite3 database after a workload, and several
 * writers at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sh } from './support/fuse-mount';

let g: GaneshaServer;
let m: FuseMount;
const at = (...p: string[]) => path.join(m.mountpoint, ...p);
const onServer = (...p: string[]) => path.join(m.serverDir, ...p);

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'data');
});

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
});

async function dropCaches(): Promise<void> {
  await sh('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
}

async function sha(file: string): Promise<string> {
  return (await sh('sha256sum', [file])).stdout.split(' ')[0];
}

test('a 1 GiB file of random bytes reads back with the same SHA-256, through the mount and on the server', async () => {
  const sum = path.join(g.workDir, 'big.sha256');
  await sh('bash', ['-c', `set -o pipefail; head -c 1073741824 /dev/urandom | tee >(sha256sum > '${sum}') | dd of='${at('big.bin')}' bs=1M iflag=fullblock status=none`], { timeoutMs: 600_000 });
  await new Promise((r) => setTimeout(r, 200));
  const written = fs.readFileSync(sum, 'utf8').split(' ')[0];
  expect(written).toMatch(/^[0-9a-f]{64}$/);
  expect(fs.statSync(at('big.bin')).size).toBe(1024 ** 3);
  await dropCaches();
  expect(await sha(at('big.bin'))).toBe(written);
  expect(await sha(onServer('big.bin'))).toBe(written);
  fs.unlinkSync(at('big.bin'));
}, 600_000);

test('fio randomized writes of mixed sizes pass verification', async () => {
  const { stdout } = await sh(
    'fio',
    [
      '--name=randverify',
      `--filename=${at('fio.dat')}`,
      '--size=48M',
      '--rw=randwrite',
      '--bsrange=4k-192k',
      '--ioengine=psync',
      '--verify=crc32c',
      '--verify_fatal=1',
      '--do_verify=1',
      '--fsync=64',
      '--randseed=4242',
      // No state file for resuming a verify after a crash: fio would leave it in the working directory.
      '--verify_state_save=0',
      '--output-format=json',
    ],
    { timeoutMs: 300_000 },
  );
  const job = JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0];
  expect(job.error).toBe(0);
  expect(job.write.io_bytes).toBeGreaterThanOrEqual(48 * 1024 * 1024);
  expect(job.read.io_bytes).toBeGreaterThan(0);
  // Verified again after the page cache is gone: the bytes come from the server.
  await dropCaches();
  const again = await sh('fio', ['--name=reverify', `--filename=${at('fio.dat')}`, '--size=48M', '--rw=randwrite', '--bsrange=4k-192k', '--verify=crc32c', '--verify_only', '--verify_fatal=1', '--randseed=4242', '--verify_state_save=0', '--output-format=json'], {
    timeoutMs: 300_000,
  });
  expect(JSON.parse(again.stdout.slice(again.stdout.indexOf('{'))).jobs[0].error).toBe(0);
}, 600_000);

test('a sqlite3 database passes PRAGMA integrity_check after a workload, in rollback-journal and WAL modes', async () => {
  for (const mode of ['delete', 'wal']) {
    const db = at(`app-${mode}.db`);
    const script = [
      `PRAGMA journal_mode=${mode};`,
      'PRAGMA synchronous=FULL;',
      'CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB);',
      'CREATE INDEX t_k ON t(k);',
      ...Array.from({ length: 12 }, (_, i) => `BEGIN; WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x < 500) INSERT INTO t(k, v) SELECT 'key-' || (x * 7919 % 10007) || '-${i}', randomblob(200 + x % 900) FROM n; COMMIT;`),
      "UPDATE t SET v = randomblob(3000) WHERE id % 7 = 0;",
      'DELETE FROM t WHERE id % 5 = 0;',
      'VACUUM;',
      "INSERT INTO t(k, v) VALUES ('last', 'done');",
      'PRAGMA wal_checkpoint(TRUNCATE);',
    ].join('\n');
    await sh('sqlite3', [db, script], { timeoutMs: 300_000 });
    expect((await sh('sqlite3', [db, 'PRAGMA integrity_check;'])).stdout.trim()).toBe('ok');
    expect((await sh('sqlite3', [db, 'SELECT count(*) FROM t;'])).stdout.trim()).toBe(String(6000 - 1200 + 1));
    await dropCaches();
    // The server's copy of the same file, read without the mount.
    const copy = path.join(g.workDir, `copy-${mode}.db`);
    fs.copyFileSync(onServer(`app-${mode}.db`), copy);
    expect((await sh('sqlite3', [copy, 'PRAGMA integrity_check;'])).stdout.trim()).toBe('ok');
    expect((await sh('sqlite3', [copy, "SELECT v FROM t WHERE k = 'last';"])).stdout.trim()).toBe('done');
  }
}, 600_000);

test('four writers at once each get their own data back', async () => {
  const sizes = [5, 9, 13, 17].map((mb) => mb * 1024 * 1024 + 123);
  await Promise.all(sizes.map((size, i) => sh('sh', ['-c', `head -c ${size} /dev/urandom > '${path.join(g.workDir, `src${i}`)}' && cp '${path.join(g.workDir, `src${i}`)}' '${at(`w${i}`)}'`])));
  await dropCaches();
  for (let i = 0; i < sizes.length; i++) {
    expect(await sha(at(`w${i}`))).toBe(await sha(path.join(g.workDir, `src${i}`)));
    expect(fs.statSync(onServer(`w${i}`)).size).toBe(sizes[i]);
  }
}, 300_000);

test('an overwrite in the middle of a file is not lost behind the earlier write of the same bytes', () => {
  const fd = fs.openSync(at('overlap'), 'w+');
  fs.writeSync(fd, Buffer.alloc(512 * 1024, 1), 0, 512 * 1024, 0);
  fs.writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 100_000);
  fs.writeSync(fd, Buffer.alloc(4096, 3), 0, 4096, 100_000);
  fs.closeSync(fd);
  const data = fs.readFileSync(onServer('overlap'));
  expect(data.length).toBe(512 * 1024);
  expect(data.subarray(100_000, 104_096).every((b) => b === 3)).toBe(true);
  expect(data[99_999]).toBe(1);
  expect(data[104_096]).toBe(1);
});
