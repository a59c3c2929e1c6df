import * as fs from 'node:fs';
import * as path from 'node:path';
import { NfsClient, StableHow, readdirAll, readdirIterate } from '../../src/nfs';
import { clientOptions, patternBytes, sha256, uniqueName, useGanesha } from './fixture';

const fx = useGanesha();

async function freshDir(): Promise<{ fh: Buffer; local: string }> {
  const name = uniqueName('io');
  const res = await fx.client.mkdir(fx.client.root, name);
  return { fh: res.handle, local: path.join(fx.server.exportDir, name) };
}

describe('large reads and writes', () => {
  test('an 8 MiB file written unstable with COMMIT reads back with the same checksum', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'big');
    const data = patternBytes(8 * 1024 * 1024, 7);
    await fx.client.writeRange(f.handle, 0, data);
    expect((await fx.client.getattr(f.handle)).size).toBe(data.length);
    expect(sha256(fs.readFileSync(path.join(d.local, 'big')))).toBe(sha256(data));
    const back = await fx.client.readRange(f.handle, 0, data.length);
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
  });

  test('with connections: 3, READs take all three TCP connections, a file\'s WRITEs keep to one, and the data stays whole', async () => {
    // Bytes each established connection to the server has sent and received, by local port.
    type Traffic = Map<string, { sent: number; received: number }>;
    const traffic = async (): Promise<Traffic> => {
      const { execFileSync } = await import('node:child_process');
      const out = execFileSync('ss', ['-Htni', 'state', 'established', `dport = :${fx.server.nfsPort}`], { encoding: 'utf8' });
      const byPort: Traffic = new Map();
      let port: string | undefined;
      for (const line of out.split('\n')) {
        const addr = /^\S*\s*\d+\s+\d+\s+\S+:(\d+)\s/.exec(line);
        if (addr) port = addr[1];
        else if (port) {
          byPort.set(port, { sent: Number(/bytes_sent:(\d+)/.exec(line)?.[1] ?? 0), received: Number(/bytes_received:(\d+)/.exec(line)?.[1] ?? 0) });
          port = undefined;
        }
      }
      return byPort;
    };
    const before = await traffic();
    const multi = await NfsClient.connect(clientOptions(fx.server, { connections: 3, maxIoSize: 256 * 1024, maxInFlight: 12 }));
    try {
      const ours = [...(await traffic()).keys()].filter((p) => !before.has(p));
      expect(ours).toHaveLength(3);
      const delta = (a: Traffic, b: Traffic, k: 'sent' | 'received') => ours.map((p) => b.get(p)![k] - a.get(p)![k]);
      const d = await freshDir();
      const f = await multi.create(d.fh, 'spread');
      const data = patternBytes(6 * 1024 * 1024 + 77, 5);
      const t0 = await traffic();
      await multi.writeRange(f.handle, 0, data);
      const t1 = await traffic();
      const sent = delta(t0, t1, 'sent').sort((a, b) => b - a);
      expect(sent[0]).toBeGreaterThan(data.length);
      expect(sent[1]).toBeLessThan(64 * 1024);
      expect(sha256(fs.readFileSync(path.join(d.local, 'spread')))).toBe(sha256(data));
      expect(sha256(await multi.readRange(f.handle, 0, data.length))).toBe(sha256(data));
      const received = delta(t1, await traffic(), 'received');
      for (const r of received) expect(r).toBeGreaterThan(data.length / 6);
    } finally {
      await multi.close();
    }
    const after = await traffic();
    expect([...after.keys()].filter((p) => !before.has(p))).toHaveLength(0);
  });

  test('a FILE_SYNC range write needs no COMMIT and lands at its offset', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'sync');
    const data = patternBytes(3 * 1024 * 1024 + 123, 3);
    const commit = jest.spyOn(fx.client, 'commit');
    try {
      await fx.client.writeRange(f.handle, 4096, data, { stability: 'sync' });
      expect(commit).not.toHaveBeenCalled();
    } finally {
      commit.mockRestore();
    }
    const local = fs.readFileSync(path.join(d.local, 'sync'));
    expect(local.length).toBe(4096 + data.length);
    expect(local.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect(local.subarray(4096).equals(data)).toBe(true);
  });

  test('reads and writes are split to the transfer size and never exceed it', async () => {
    const small = await NfsClient.connect(clientOptions(fx.server, { maxIoSize: 64 * 1024, maxInFlight: 4 }));
    try {
      expect(small.readSize).toBe(64 * 1024);
      expect(small.writeSize).toBe(64 * 1024);
      const d = await freshDir();
      const f = await small.create(d.fh, 'split');
      const data = patternBytes(1024 * 1024 + 10, 11);
      const write = jest.spyOn(small, 'write');
      const read = jest.spyOn(small, 'readInto');
      await small.writeRange(f.handle, 0, data);
      expect(write).toHaveBeenCalledTimes(17);
      for (const call of write.mock.calls) expect((call[2] as Buffer).length).toBeLessThanOrEqual(64 * 1024);
      const back = await small.readRange(f.handle, 0, data.length);
      expect(read).toHaveBeenCalledTimes(17);
      for (const call of read.mock.calls) expect((call[2] as Buffer).length).toBeLessThanOrEqual(64 * 1024);
      expect(back.equals(data)).toBe(true);
    } finally {
      await small.close();
    }
  });

  test('a lent READ is a view of the received record, and its memory serves the next READ once released', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'lent');
    const data = patternBytes(4 * 1024 * 1024, 11);
    await fx.client.writeRange(f.handle, 0, data);
    const size = fx.client.readSize;
    const first = await fx.client.readLent(f.handle, 0, size);
    expect(first.data.equals(data.subarray(0, size))).toBe(true);
    // Not released yet: the next reply cannot use that memory.
    const second = await fx.client.readLent(f.handle, size, size);
    expect(second.data.equals(data.subarray(size, 2 * size))).toBe(true);
    expect(second.data.buffer).not.toBe(first.data.buffer);
    const firstMemory = first.data.buffer;
    first.release();
    // Every connection's next reply of that size now comes in a pooled buffer; the first was freed.
    const replies = await Promise.all([2, 3].map((i) => fx.client.readLent(f.handle, i * size, size)));
    expect(replies.map((r) => r.data.buffer)).toContain(firstMemory);
    for (const [i, r] of replies.entries()) expect(r.data.equals(data.subarray((i + 2) * size, (i + 3) * size))).toBe(true);
    for (const r of [second, ...replies]) r.release();
    const last = await fx.client.readLent(f.handle, data.length - 10, size);
    expect(last.eof).toBe(true);
    expect(last.data.equals(data.subarray(data.length - 10))).toBe(true);
    last.release();
  });

  test('a range read past the end of file returns only the bytes that exist', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'short');
    const data = patternBytes(1_500_000, 5);
    await fx.client.writeRange(f.handle, 0, data);
    const back = await fx.client.readRange(f.handle, 1_000_000, 5_000_000);
    expect(back.equals(data.subarray(1_000_000))).toBe(true);
  });

  test('unstable WRITEs and their COMMIT carry the same verifier while the server runs', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'c');
    const w1 = await fx.client.write(f.handle, 0, Buffer.from('one'), StableHow.UNSTABLE);
    const w2 = await fx.client.write(f.handle, 3, Buffer.from('two'), StableHow.UNSTABLE);
    expect(w1.verifier.equals(w2.verifier)).toBe(true);
    const c = await fx.client.commit(f.handle, 0, 0);
    expect(c.verifier.equals(w1.verifier)).toBe(true);
    await expect(fx.client.commitChecked(f.handle, w1.verifier)).resolves.toBeUndefined();
    expect(fs.readFileSync(path.join(d.local, 'c'), 'utf8')).toBe('onetwo');
  });

  test('commitChecked reports a verifier that does not match', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'v');
    await fx.client.write(f.handle, 0, Buffer.from('x'), StableHow.UNSTABLE);
    await expect(fx.client.commitChecked(f.handle, Buffer.from('00000000'))).rejects.toMatchObject({
      name: 'WriteVerifierError',
      code: 'EVERIFIER',
    });
  });
});

describe('many calls in flight', () => {
  test('1,000 concurrent GETATTRs on one connection all get their own answers', async () => {
    const d = await freshDir();
    const files = await Promise.all(
      Array.from({ length: 20 }, (_, i) => fx.client.create(d.fh, `f${i}`, { mode: 'guarded', attrs: { mode: 0o600 + i } })),
    );
    let peak = 0;
    const calls = Array.from({ length: 1000 }, (_, i) => {
      const p = fx.client.getattr(files[i % 20].handle).then((a) => ({ i, a }));
      peak = Math.max(peak, fx.client.rpc.inFlight);
      return p;
    });
    const results = await Promise.all(calls);
    expect(peak).toBe(1000);
    for (const { i, a } of results) {
      expect(a.mode).toBe(0o600 + (i % 20));
      expect(a.fileid).toBe(files[i % 20].attrs?.fileid);
    }
  });

  test('interleaved writes to different offsets of one file all land', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'striped');
    const block = 8192;
    await Promise.all(
      Array.from({ length: 256 }, (_, i) => fx.client.write(f.handle, i * block, Buffer.alloc(block, i), StableHow.UNSTABLE)),
    );
    await fx.client.commit(f.handle);
    const back = await fx.client.readRange(f.handle, 0, 256 * block);
    for (let i = 0; i < 256; i++) expect(back[i * block + 100]).toBe(i);
  });
});

describe('READDIRPLUS', () => {
  const COUNT = 5000;
  let dir: Buffer;
  let local: string;

  beforeAll(async () => {
    const d = await freshDir();
    dir = d.fh;
    local = d.local;
    // Made locally: this test is about listing, not about 5,000 CREATE round trips.
    for (let i = 0; i < COUNT; i++) fs.writeFileSync(path.join(local, `entry-${String(i).padStart(5, '0')}`), String(i));
  });

  test('paging over 5,000 entries returns each exactly once with attributes and handles', async () => {
    const pages: number[] = [];
    let cookie = 0n;
    let cookieverf: Buffer | undefined;
    const names: string[] = [];
    for (;;) {
      const page = await fx.client.readdirplus(dir, { cookie, cookieverf, dircount: 4096, maxcount: 16384 });
      pages.push(page.entries.length);
      for (const e of page.entries) {
        cookie = e.cookie;
        if (e.name === '.' || e.name === '..') continue;
        names.push(e.name);
        expect(e.handle).toBeDefined();
        expect(e.attrs?.size).toBe(String(Number(e.name.slice(6))).length);
      }
      cookieverf = page.cookieverf;
      if (page.eof) break;
    }
    expect(pages.length).toBeGreaterThan(10);
    expect(names.length).toBe(COUNT);
    expect(new Set(names).size).toBe(COUNT);
    expect(names.sort()).toEqual(fs.readdirSync(local).sort());
  });

  test('readdirAll and readdirIterate list the same entries', async () => {
    const all = await readdirAll(fx.client, dir);
    expect(all.length).toBe(COUNT);
    let n = 0;
    for await (const e of readdirIterate(fx.client, dir, { maxcount: 8192 })) {
      expect(e.name.startsWith('entry-')).toBe(true);
      n++;
    }
    expect(n).toBe(COUNT);
  });

  test('a handle from READDIRPLUS reads the file', async () => {
    const all = await readdirAll(fx.client, dir);
    const e = all.find((x) => x.name === 'entry-04242')!;
    expect((await fx.client.read(e.handle!, 0, 10)).data.toString()).toBe('4242');
  });
});
