import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  FileType,
  mkdirp,
  readWholeFile,
  readdirAll,
  resolvePath,
  rmrf,
  splitParent,
  walk,
  writeWholeFile,
} from '../../src/nfs';
import { patternBytes, sha256, uniqueName, useGanesha } from './fixture';

const fx = useGanesha();
const local = (p: string) => path.join(fx.server.exportDir, p);

describe('path helpers', () => {
  test('splitParent separates the last component and refuses the root', () => {
    expect(splitParent('/a/b/c')).toEqual({ parent: 'a/b', name: 'c' });
    expect(splitParent('c')).toEqual({ parent: '', name: 'c' });
    expect(() => splitParent('/')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  test('lookupPath and resolvePath walk a nested path to the right handle', async () => {
    const base = uniqueName('p');
    fs.mkdirSync(local(`${base}/x/y`), { recursive: true });
    fs.writeFileSync(local(`${base}/x/y/z.txt`), 'deep');
    const fh = await resolvePath(fx.client, `/${base}/x/y/z.txt`);
    expect((await fx.client.read(fh, 0, 10)).data.toString()).toBe('deep');
    const res = await fx.client.lookupPath(`${base}//x/./y`);
    expect(res.attrs?.type).toBe(FileType.DIR);
    await expect(fx.client.lookupPath(`${base}/x/missing/z`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('lookupPath of the root returns the root handle with its attributes', async () => {
    const res = await fx.client.lookupPath('/');
    expect(res.handle.equals(fx.client.root)).toBe(true);
    expect(res.attrs?.type).toBe(FileType.DIR);
  });

  test('mkdirp creates missing parents, is idempotent, and refuses to go through a file', async () => {
    const base = uniqueName('m');
    const fh = await mkdirp(fx.client, `${base}/a/b/c`, 0o750);
    expect(fs.statSync(local(`${base}/a/b/c`)).isDirectory()).toBe(true);
    expect(fs.statSync(local(`${base}/a/b/c`)).mode & 0o777).toBe(0o750);
    const again = await mkdirp(fx.client, `/${base}/a/b/c/`);
    expect(again.equals(fh)).toBe(true);
    fs.writeFileSync(local(`${base}/file`), '');
    await expect(mkdirp(fx.client, `${base}/file/sub`)).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('concurrent mkdirp calls on the same path all succeed', async () => {
    const base = uniqueName('mc');
    const handles = await Promise.all(Array.from({ length: 8 }, () => mkdirp(fx.client, `${base}/one/two`)));
    for (const h of handles) expect(h.equals(handles[0])).toBe(true);
  });

  test('rmrf removes a tree with files, links and subdirectories, and ignores a missing path', async () => {
    const base = uniqueName('rm');
    fs.mkdirSync(local(`${base}/t/d1/d2`), { recursive: true });
    for (let i = 0; i < 50; i++) fs.writeFileSync(local(`${base}/t/d1/f${i}`), 'x'.repeat(i));
    fs.symlinkSync('d1', local(`${base}/t/link`));
    fs.writeFileSync(local(`${base}/t/d1/d2/deep`), 'deep');
    await rmrf(fx.client, `${base}/t`);
    expect(fs.existsSync(local(`${base}/t`))).toBe(false);
    expect(fs.existsSync(local(base))).toBe(true);
    await expect(rmrf(fx.client, `${base}/t`)).resolves.toBeUndefined();
    await expect(rmrf(fx.client, `${base}/nope/deeper`)).resolves.toBeUndefined();
  });

  test('names and symlink targets that are not UTF-8 are sent and listed as their bytes, and rmrf removes them', async () => {
    const base = uniqueName('raw');
    const dir = await mkdirp(fx.client, base);
    const ff = Buffer.from('bad-\xff', 'latin1');
    const fe = Buffer.from('bad-\xfe', 'latin1');
    await fx.client.create(dir, ff, { mode: 'guarded', attrs: { mode: 0o644 } });
    await fx.client.create(dir, fe, { mode: 'guarded', attrs: { mode: 0o644 } });
    const target = Buffer.from('to-\xfd', 'latin1');
    const link = await fx.client.symlink(dir, Buffer.from('link-\xfc', 'latin1'), target);
    // On the server's disk: three names, none decoded (UTF-8 decoding would have merged the two files).
    const onDisk = fs.readdirSync(Buffer.from(local(base)), { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
    expect(onDisk).toEqual([ff, fe, Buffer.from('link-\xfc', 'latin1')].map((b) => b.toString('hex')).sort());
    const listed = (await readdirAll(fx.client, dir)).map((e) => e.rawName.toString('hex')).sort();
    expect(listed).toEqual(onDisk);
    expect((await fx.client.readlinkRaw(link.handle)).equals(target)).toBe(true);
    expect((await fx.client.lookup(dir, fe)).attrs?.type).toBe(FileType.REG);
    await rmrf(fx.client, base);
    expect(fs.existsSync(local(base))).toBe(false);
  });

  test('rmrf of a single file removes just that file', async () => {
    const base = uniqueName('rf');
    fs.mkdirSync(local(base));
    fs.writeFileSync(local(`${base}/a`), 'a');
    fs.writeFileSync(local(`${base}/b`), 'b');
    await rmrf(fx.client, `${base}/a`);
    expect(fs.readdirSync(local(base))).toEqual(['b']);
  });

  test('walk counts files, directories, symlinks and bytes like the local tree', async () => {
    const base = uniqueName('w');
    let bytes = 0;
    let files = 0;
    for (let d = 0; d < 5; d++) {
      fs.mkdirSync(local(`${base}/d${d}/sub`), { recursive: true });
      for (let i = 0; i < 20; i++) {
        const size = d * 1000 + i * 17;
        fs.writeFileSync(local(`${base}/d${d}/${i < 10 ? '' : 'sub/'}f${i}`), Buffer.alloc(size, 1));
        bytes += size;
        files++;
      }
    }
    fs.symlinkSync('d0', local(`${base}/l`));
    const seen: string[] = [];
    const totals = await walk(fx.client, base, { onEntry: (p) => seen.push(p) });
    expect(totals).toMatchObject({ files, dirs: 10, symlinks: 1, others: 0, bytes });
    expect(seen).toContain('d3/sub/f15');
    expect(seen.length).toBe(files + 10 + 1);
    await expect(walk(fx.client, `${base}/l`)).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('writeWholeFile then readWholeFile round-trips 5 MiB and truncates an older, longer file', async () => {
    const base = uniqueName('wf');
    fs.mkdirSync(local(base));
    fs.writeFileSync(local(`${base}/f`), Buffer.alloc(9 * 1024 * 1024, 0xee));
    const data = patternBytes(5 * 1024 * 1024 + 3, 21);
    await writeWholeFile(fx.client, `${base}/f`, data, { mode: 0o600 });
    expect(fs.statSync(local(`${base}/f`)).size).toBe(data.length);
    expect(sha256(fs.readFileSync(local(`${base}/f`)))).toBe(sha256(data));
    expect(sha256(await readWholeFile(fx.client, `${base}/f`))).toBe(sha256(data));
  });

  test('readWholeFile of an empty file is empty and of a directory fails with EISDIR', async () => {
    const base = uniqueName('e');
    fs.mkdirSync(local(base));
    fs.writeFileSync(local(`${base}/empty`), '');
    expect((await readWholeFile(fx.client, `${base}/empty`)).length).toBe(0);
    await expect(readWholeFile(fx.client, base)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});
