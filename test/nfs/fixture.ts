// Shared test setup: one ganesha per test file and a client connected to it.

import { createHash } from 'node:crypto';
import { GaneshaServer, startGanesha, GaneshaOptions } from '../harness/ganesha';
import { NfsClient, NfsClientOptions } from '../../src/nfs';

export function clientOptions(g: GaneshaServer, extra: Partial<NfsClientOptions> = {}): NfsClientOptions {
  return { host: g.host, port: g.nfsPort, mountPort: g.mountPort, exportPath: g.exportPath, uid: 0, gid: 0, ...extra };
}

export interface Fixture {
  server: GaneshaServer;
  client: NfsClient;
}

/** Starts ganesha in beforeAll and connects a client; tears both down in afterAll. */
export function useGanesha(opts: GaneshaOptions = {}, extra: Partial<NfsClientOptions> = {}): Fixture {
  const fx = {} as Fixture;
  beforeAll(async () => {
    fx.server = await startGanesha(opts);
    fx.client = await NfsClient.connect(clientOptions(fx.server, extra));
  });
  afterAll(async () => {
    await fx.client?.close();
    await fx.server?.stop();
  });
  return fx;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes (fast xorshift), so failures reproduce. */
export function patternBytes(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (; i < length; i++) out[i] = i & 0xff;
  return out;
}

let counter = 0;
/** A name unique within this test process. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}`;
}
