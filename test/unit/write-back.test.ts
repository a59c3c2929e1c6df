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

function writer(server: FakeServer, commitEvery: number): FileWriter {
  return new FileWriter(server.client(), Buffer.from('fh'), {
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
  const w = new FileWriter(client, Buffer.from('fh'), { writeSize: 64 * KiB, maxInFlight: 4, commitEvery: 1024 * KiB, call: (_what, fn) => fn() });
  const data = randomBytes(64 * KiB);
  await w.write(0, data, true);
  // The WRITE is queued, not yet on the wire: a reply to the kernel written now goes out first.
  expect(sent).toEqual([]);
  expect(w.busy).toBe(true);
  await w.commit();
  expect(sent).toEqual([0]);
  expect(server.stable.equals(data)).toBe(true);
});
