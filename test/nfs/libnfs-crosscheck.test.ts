import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { mkdirp, readWholeFile, writeWholeFile } from '../../src/nfs';
import { patternBytes, sha256, uniqueName, useGanesha } from './fixture';

// libnfs's command-line tools are an independent NFSv3 client: what we write
// must be what they read, and the other way round.
const run = promisify(execFile);
const fx = useGanesha();

function url(p: string): string {
  const g = fx.server;
  return `nfs://${g.host}${g.exportPath}/${p}?nfsport=${g.nfsPort}&mountport=${g.mountPort}`;
}

describe('cross-check with libnfs', () => {
  test('nfs-cat reads back exactly the bytes we wrote', async () => {
    const name = uniqueName('x');
    const data = patternBytes(3 * 1024 * 1024 + 17, 5);
    await writeWholeFile(fx.client, name, data);
    const { stdout } = await run('nfs-cat', [url(name)], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    expect(stdout.length).toBe(data.length);
    expect(sha256(stdout)).toBe(sha256(data));
  });

  test('nfs-ls lists the directory, files and sizes we created', async () => {
    const dir = uniqueName('ls');
    await mkdirp(fx.client, `${dir}/sub`);
    await writeWholeFile(fx.client, `${dir}/hello.txt`, Buffer.from('hello world'));
    const dirFh = await fx.client.lookupPath(dir);
    await fx.client.symlink(dirFh.handle, 'ln', 'hello.txt');
    const { stdout } = await run('nfs-ls', [url(dir)]);
    const lines = stdout.trim().split('\n');
    const byName = new Map(lines.map((l) => [l.trim().split(/\s+/).pop()!, l]));
    expect(byName.get('hello.txt')).toMatch(/^-rw-r--r--\s.*\s11\s+hello\.txt$/);
    expect(byName.get('sub')).toMatch(/^d/);
    expect(byName.get('ln')).toMatch(/^l/);
  });

  test('a file written by nfs-cp reads back through our client', async () => {
    const local = path.join(os.tmpdir(), `${uniqueName('src')}.bin`);
    const data = patternBytes(2 * 1024 * 1024 + 5, 9);
    fs.writeFileSync(local, data);
    try {
      const name = uniqueName('cp');
      await run('nfs-cp', [local, url(name)]);
      expect(sha256(await readWholeFile(fx.client, name))).toBe(sha256(data));
    } finally {
      fs.rmSync(local, { force: true });
    }
  });
});
