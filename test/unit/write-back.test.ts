/**
 * The userspace NFS server's write-behind (src/fuse-nfs/write-back.ts) against an in-memory NFS
 * server that, like a real one, keeps UNSTABLE data in a cache it loses on restart and makes it
 * durable on COMMIT. The restart tests in test/nfs/fuse drive the same code against ganesha.
 */
import { randomBytes } from 'node:crypto';
import { FileWriter } from '../../src/fuse-nfs/write-back';
import { NfsClient, StableHow } from '../../src/nfs';

const KiB = 1024;

class FakeServer {
  /** What survives a restart. */
  stable: Buffer = Buffer.alloc(0);
  /** What reads would return now (stable + unstable writes). */
  cache: Buffer = Buffer.alloc(0);
  verifier = randomBytes(8);
  commits = 0;
  /** Milliseconds each COMMIT takes. */
  commitDelayMs = 0;
  onWrite?: (n: number) => void;
  private writes = 0;

  private static put(buf: Buffer, offset: number, data: Buffer): Buffer {
    const out = buf.length >= offset + data.length ? buf : Buffer.concat([buf, Buffer.alloc(offset + data.length - buf.length)]);
    data.copy(out, offset);
    return out;
  }

  restart(): void {
    this.cache = Buffer.from(this.stable);
    this.verifier = randomBytes(8);
  }

  client(): NfsClient {
    const tick = () => new Promise((r) => setImmediate(r));
    return {
      write: async (_fh: Buffer, offset: number, data: Buffer, how: StableHow) => {
        await tick();
        this.cache = FakeServer.put(this.cache, offset, data);
        if (how === StableHow.FILE_SYNC) this.stable = FakeServer.put(this.stable, offset, data);
        this.onWrite?.(++this.writes);
        return { count: data.length, committed: how, verifier: this.verifier, wcc: {} };
      },
      commit: async () => {
        const verifier = this.verifier;
        await new Promise((r) => setTimeout(r, this.commitDelayMs));
        this.commits++;
        // A restart during the COMMIT: the answer carries the new verifier, the old data is gone.
        if (!verifier.equals(this.verifier)) return { verifier: this.verifier, wcc: {} };
        this.stable = Buffer.from(this.cache);
        return { verifier: this.verifier, wcc: {} };
      },
    } as unknown as NfsClient;
  }
}

/** A writer on `client` (by default the server's own; a test may wrap its calls). */
function writer(server: FakeServer, commitEvery: number, client: NfsClient = server.client()): FileWriter {
  return new FileWriter(client, Buffer.from('fh'), {
    writeSize: 64 * KiB,
    maxInFlight: 4,
    commitEvery,
    call: (_what, fn) => fn(),
  });
}

test('data written in 1 MiB requests is durable after commit(), with COMMITs sent along the way', async () => {
  const server = new FakeServer();
  const w = writer(server, 256 * KiB);
  const expected = randomBytes(8 * 1024 * KiB);
  for (let off = 0; off < expected.length; off += 1024 * KiB) await w.write(off, expected.subarray(off, off + 1024 * KiB), true);
  expect(server.commits).toBeGreaterThan(2);
  await w.commit();
  expect(server.stable.equals(expected)).toBe(true);
  expect(w.dirty).toBe(false);
});

test('commit() waits for a COMMIT running in the background: when it returns, everything written is durable', async () => {
  const server = new FakeServer();
  server.commitDelayMs = 50;
  const w = writer(server, 128 * KiB);
  const expected = randomBytes(512 * KiB);
  for (let off = 0; off < expected.length; off += 64 * KiB) await w.write(off, expected.subarray(off, off + 64 * KiB));
  await w.commit();
  expect(server.stable.equals(expected)).toBe(true);
});

test('a server restart loses unconfirmed data; it is sent again, and newer data over the same bytes still wins', async () => {
  const server = new FakeServer();
  server.commitDelayMs = 5;
  const w = writer(server, 128 * KiB);
  const expected = randomBytes(1024 * KiB);
  // Restart the server in the middle of the stream, while a background COMMIT may be running.
  server.onWrite = (n) => {
    if (n === 9) server.restart();
  };
  for (let off = 0; off < expected.length; off += 64 * KiB) await w.write(off, expected.subarray(off, off + 64 * KiB));
  // Then overwrite an early range with new bytes: the resend of the old bytes must not land after it.
  const newer = randomBytes(128 * KiB);
  newer.copy(expected, 64 * KiB);
  await w.write(64 * KiB, newer);
  await w.commit();
  expect(server.cache.equals(expected)).toBe(true);
  expect(server.stable.equals(expected)).toBe(true);
});

test('write() answers before its WRITE is sent, so the application is not held back by the socket send', async () => {
  const server = new FakeServer();
  const sent: number[] = [];
  const client = server.client();
  const send = client.write.bind(client);
  client.write = ((fh: Buffer, offset: number, data: Buffer, how: StableHow) => {
    sent.push(offset);
    return send(fh, offset, data, how);
  }) as NfsClient['write'];
  const w = writer(server, 1024 * KiB, client);
  const data = randomBytes(64 * KiB);
  await w.write(0, data, true);
  // The WRITE is queued, not yet on the wire: a reply to the kernel written now goes out first.
  expect(sent).toEqual([]);
  expect(w.busy).toBe(true);
  await w.commit();
  expect(sent).toEqual([0]);
  expect(server.stable.equals(data)).toBe(true);
});

/**
 * Lent buffers, as the FUSE session lends its request memory: each is a copy of its part of
 * `expected`, and giving it back overwrites it (the session reads the next request into it), so
 * any use after the give-back would reach the server as 0xEE bytes.
 */
function lend(expected: Buffer, size: number, server: FakeServer, checkDurable = true) {
  const back = new Map<number, number>();
  const parts = [];
  for (let off = 0; off < expected.length; off += size) {
    const buf = Buffer.from(expected.subarray(off, off + size));
    parts.push({
      off,
      buf,
      giveBack: () => {
        // Durable before it comes back: the server's stable copy holds these bytes already.
        if (checkDurable) expect(server.stable.subarray(off, off + size).equals(expected.subarray(off, off + size))).toBe(true);
        back.set(off, (back.get(off) ?? 0) + 1);
        buf.fill(0xee);
      },
    });
  }
  return { parts, back };
}

test('a lent buffer comes back once, only after a COMMIT confirmed its data, also when WRITEs take it in pieces', async () => {
  const server = new FakeServer();
  const client = server.client();
  const send = client.write.bind(client);
  // The server takes at most 40 KiB per WRITE: one 64 KiB chunk becomes two acknowledged WRITEs.
  client.write = ((fh: Buffer, offset: number, data: Buffer, how: StableHow) => send(fh, offset, data.subarray(0, 40 * KiB), how)) as NfsClient['write'];
  const w = writer(server, 256 * KiB, client);
  const expected = randomBytes(4 * 1024 * KiB);
  const { parts, back } = lend(expected, 256 * KiB, server);
  for (const p of parts) await w.write(p.off, p.buf, true, p.giveBack);
  expect(back.size).toBeGreaterThan(0); // background COMMITs gave some back while writing went on
  await w.commit();
  expect(server.stable.equals(expected)).toBe(true);
  expect([...back.values()]).toEqual(parts.map(() => 1));
});

test('after a server restart lent buffers come back only once their data was sent again', async () => {
  const server = new FakeServer();
  server.commitDelayMs = 5;
  const w = writer(server, 256 * KiB);
  const expected = randomBytes(2 * 1024 * KiB);
  server.onWrite = (n) => {
    if (n === 11) server.restart();
  };
  const { parts, back } = lend(expected, 128 * KiB, server);
  for (const p of parts) await w.write(p.off, p.buf, true, p.giveBack);
  await w.commit();
  expect(server.stable.equals(expected)).toBe(true);
  expect([...back.values()]).toEqual(parts.map(() => 1));
});

test('a buffer whose WRITE failed is never given back (the failed request may still sit in a socket queue)', async () => {
  const server = new FakeServer();
  const client = server.client();
  const send = client.write.bind(client);
  client.write = (async (fh: Buffer, offset: number, data: Buffer, how: StableHow) => {
    if (offset === 256 * KiB) throw Object.assign(new Error('no reply'), { code: 'ETIMEDOUT' });
    return send(fh, offset, data, how);
  }) as NfsClient['write'];
  const w = writer(server, 1024 * KiB, client);
  const expected = randomBytes(1024 * KiB);
  // Not checked for durability: the failed part never reaches the server.
  const { parts, back } = lend(expected, 128 * KiB, server, false);
  // The failed WRITE's error surfaces on a later write or on commit, as write-back errors do.
  const run = async () => {
    for (const p of parts) await w.write(p.off, p.buf, true, p.giveBack);
    await w.commit();
  };
  await expect(run()).rejects.toThrow('no reply');
  // The buffer's other half was acknowledged and is committed now; the buffer still stays out.
  await w.commit();
  expect(server.stable.subarray(320 * KiB, 384 * KiB).equals(expected.subarray(320 * KiB, 384 * KiB))).toBe(true);
  expect(back.has(256 * KiB)).toBe(false);
  expect(back.get(0)).toBe(1);
});
