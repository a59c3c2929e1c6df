import * as net from 'node:net';
import type { CallOptions, CreateHow } from '../../src/nfs';
import {
  Nfs3,
  NfsClient,
  RpcClient,
  RpcError,
  StableHow,
  WriteVerifierError,
  writeWholeFile,
  readWholeFile,
} from '../../src/nfs';
import { clientOptions, patternBytes, uniqueName, useGanesha } from './fixture';

const fx = useGanesha({}, { timeoutMs: 20_000 });

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Ganesha's write verifier is its boot time in seconds: make sure a restart lands in a new second. */
async function restartInANewSecond(): Promise<void> {
  await sleep(1100);
  await fx.server.restart();
}

describe('reconnect after the server goes away', () => {
  test('an idempotent call sent before a crash is resent after the server comes back and succeeds', async () => {
    const f = await fx.client.create(fx.client.root, uniqueName('r'), { mode: 'guarded', attrs: { mode: 0o604 } });
    const before = fx.client.rpc.reconnects;
    await fx.server.pause();
    const pending = fx.client.getattr(f.handle);
    await sleep(200); // the call is on the wire, unanswered
    expect(fx.client.rpc.inFlight).toBe(1);
    await fx.server.crash();
    await sleep(300);
    await fx.server.startServer();
    const attrs = await pending;
    expect(attrs.mode).toBe(0o604);
    expect(fx.client.rpc.reconnects).toBeGreaterThan(before);
  });

  test('calls made while the server is down wait for it and then succeed', async () => {
    const f = await fx.client.create(fx.client.root, uniqueName('r'));
    await fx.server.stopServer();
    const pending = Promise.all([fx.client.getattr(f.handle), fx.client.write(f.handle, 0, Buffer.from('after'), StableHow.FILE_SYNC)]);
    await sleep(700);
    await fx.server.startServer();
    const [attrs, w] = await pending;
    expect(attrs.fileid).toBeGreaterThan(0n);
    expect(w.count).toBe(5);
    expect((await fx.client.read(f.handle, 0, 10)).data.toString()).toBe('after');
  });

  test('a non-idempotent call cut by a crash fails with ECONNRESET instead of being resent', async () => {
    await fx.server.pause();
    const name = uniqueName('d');
    const pending = fx.client.mkdir(fx.client.root, name).catch((e: unknown) => e);
    await sleep(200);
    await fx.server.crash();
    const err = await pending;
    expect(err).toMatchObject({ name: 'RpcError', code: 'ECONNRESET' });
    await fx.server.startServer();
    await expect(fx.client.null()).resolves.toBeUndefined();
  });

  test('an UNCHECKED CREATE that sets a size is not resent after a crash; an EXCLUSIVE one is, and succeeds', async () => {
    await fx.server.pause();
    const truncating = uniqueName('u');
    const exclusive = uniqueName('x');
    const cut = fx.client
      .create(fx.client.root, truncating, { mode: 'unchecked', attrs: { mode: 0o644, size: 0 } })
      .catch((e: unknown) => e);
    const resent = fx.client.create(fx.client.root, exclusive, { mode: 'exclusive', verifier: Buffer.from('resend!!') });
    await sleep(200);
    expect(fx.client.rpc.inFlight).toBe(2);
    await fx.server.crash();
    try {
      // Failed as soon as the connection dropped, not waiting for the server to be resent to.
      const settled = await Promise.race([cut, sleep(1000).then(() => 'still waiting to be resent')]);
      expect(settled).toMatchObject({ name: 'RpcError', code: 'ECONNRESET', procedure: 'NFS3.CREATE' });
    } finally {
      await fx.server.startServer();
    }
    const created = await resent;
    expect((await fx.client.lookup(fx.client.root, exclusive)).handle.equals(created.handle)).toBe(true);
  });

  test('file handles stay valid across a server restart', async () => {
    const name = uniqueName('h');
    const fh = await writeWholeFile(fx.client, name, Buffer.from('persisted'));
    await fx.server.restart();
    expect((await fx.client.read(fh, 0, 100)).data.toString()).toBe('persisted');
  });
});

describe('which CREATE calls may be resent after a reconnect', () => {
  /** An Nfs3 over a fake RPC client that records each call's options and fails it. */
  function recordingNfs3(): { nfs: Nfs3; calls: CallOptions[] } {
    const calls: CallOptions[] = [];
    const rpc = {
      call: async (_prog: number, _vers: number, _proc: number, _args: unknown, options: CallOptions) => {
        calls.push(options);
        throw new RpcError('ECONNRESET', 'not sent: fake RPC client');
      },
    };
    return { nfs: new Nfs3(rpc as unknown as RpcClient), calls };
  }

  const cases: [string, boolean, CreateHow | undefined][] = [
    ['EXCLUSIVE (the verifier makes a resend harmless)', true, { mode: 'exclusive', verifier: Buffer.from('12345678') }],
    ['UNCHECKED without attributes', true, { mode: 'unchecked' }],
    ['UNCHECKED setting only a mode', true, { mode: 'unchecked', attrs: { mode: 0o644 } }],
    ['UNCHECKED setting size 0 (truncates an existing file)', false, { mode: 'unchecked', attrs: { mode: 0o644, size: 0 } }],
    ['UNCHECKED setting another size (knfsd applies it to an existing file)', false, { mode: 'unchecked', attrs: { size: 10 } }],
    ['GUARDED (a resend of a create that ran fails with EEXIST)', false, { mode: 'guarded', attrs: { mode: 0o644 } }],
    ['GUARDED, the default', false, undefined],
  ];
  test.each(cases)('%s: resendable = %s', async (_what, resendable, how) => {
    const { nfs, calls } = recordingNfs3();
    await expect(nfs.create(Buffer.alloc(8), 'f', how)).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(calls).toEqual([expect.objectContaining({ name: 'NFS3.CREATE', idempotent: resendable })]);
  });
});

describe('write verifiers', () => {
  test('a restart between unstable WRITE and COMMIT is reported as a verifier change', async () => {
    const f = await fx.client.create(fx.client.root, uniqueName('v'));
    const w = await fx.client.write(f.handle, 0, Buffer.from('unstable data'), StableHow.UNSTABLE);
    await restartInANewSecond();
    const err = await fx.client.commitChecked(f.handle, w.verifier, 0, 13).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriteVerifierError);
    expect(err).toMatchObject({ code: 'EVERIFIER', offset: 0, count: 13 });
    expect((err as WriteVerifierError).expected.equals(w.verifier)).toBe(true);
  });

  test('writeRange reports a verifier change seen at COMMIT so the caller can resend', async () => {
    const f = await fx.client.create(fx.client.root, uniqueName('v'));
    const commit = jest.spyOn(fx.client, 'commit').mockImplementationOnce(async (fh, offset, count) => {
      const real = await NfsClient.prototype.commit.call(fx.client, fh, offset, count);
      return { ...real, verifier: Buffer.from('changed!') };
    });
    try {
      await expect(fx.client.writeRange(f.handle, 0, Buffer.from('data'))).rejects.toBeInstanceOf(WriteVerifierError);
    } finally {
      commit.mockRestore();
    }
  });

  test('writeWholeFile resends the data once when the verifier changed', async () => {
    const name = uniqueName('w');
    const data = patternBytes(3 * 1024 * 1024, 9);
    const write = jest.spyOn(fx.client, 'write');
    const commit = jest.spyOn(fx.client, 'commit').mockImplementationOnce(async (fh, offset, count) => {
      const real = await NfsClient.prototype.commit.call(fx.client, fh, offset, count);
      return { ...real, verifier: Buffer.from('changed!') };
    });
    try {
      await writeWholeFile(fx.client, name, data);
      expect(commit).toHaveBeenCalledTimes(2);
      expect(write.mock.calls.length).toBe(2 * Math.ceil(data.length / fx.client.writeSize));
    } finally {
      commit.mockRestore();
      write.mockRestore();
    }
    expect((await readWholeFile(fx.client, name)).equals(data)).toBe(true);
  });
});

describe('timeouts', () => {
  test('a call to a server that stopped answering fails with ETIMEDOUT within its deadline', async () => {
    await fx.server.pause();
    try {
      const started = Date.now();
      const err = await fx.client.rpc
        .call(100003, 3, 0, undefined, { timeoutMs: 500, name: 'NFS3.NULL' })
        .catch((e: unknown) => e);
      const took = Date.now() - started;
      expect(err).toMatchObject({ name: 'RpcError', code: 'ETIMEDOUT', procedure: 'NFS3.NULL' });
      expect(took).toBeGreaterThanOrEqual(450);
      expect(took).toBeLessThan(2000);
    } finally {
      fx.server.resume();
    }
    await expect(fx.client.null()).resolves.toBeUndefined();
  });

  test('the client-wide timeoutMs bounds connect() to a server that does not answer', async () => {
    await fx.server.pause();
    try {
      const started = Date.now();
      const err = await NfsClient.connect(clientOptions(fx.server, { timeoutMs: 400 })).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ETIMEDOUT' });
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      fx.server.resume();
    }
  });

  test('a call to a server that is down fails with ETIMEDOUT while reconnects keep failing', async () => {
    const c = await NfsClient.connect(clientOptions(fx.server, { timeoutMs: 800 }));
    try {
      await fx.server.stopServer();
      const started = Date.now();
      await expect(c.getattr(c.root)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      await fx.server.startServer();
      await c.close();
    }
  });

  test('a call that times out while the server refuses connections says so, and keeps code ETIMEDOUT', async () => {
    const c = await NfsClient.connect(clientOptions(fx.server, { timeoutMs: 800 }));
    const where = `${fx.server.host}:${fx.server.nfsPort}`;
    try {
      await fx.server.stopServer();
      const err = await c.getattr(c.root).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'RpcError', code: 'ETIMEDOUT', procedure: 'NFS3.GETATTR' });
      expect((err as Error).message).toBe(
        `NFS3.GETATTR: no reply from ${where} within 800 ms; last connect attempt: connection refused (ECONNREFUSED)`,
      );
      expect((err as Error).cause).toMatchObject({ name: 'RpcError', code: 'ECONNREFUSED' });
    } finally {
      await fx.server.startServer();
    }
    try {
      await c.null(); // connected again: the connect error is history
      await fx.server.pause();
      const err = await c.rpc.call(100003, 3, 0, undefined, { timeoutMs: 300, name: 'NFS3.NULL' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ETIMEDOUT', message: `NFS3.NULL: no reply from ${where} within 300 ms` });
      expect((err as Error).cause).toBeUndefined();
    } finally {
      fx.server.resume();
      await c.close();
    }
  });

  test('connecting to a port nobody listens on fails at once with ECONNREFUSED', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const started = Date.now();
    await expect(RpcClient.connect({ host: '127.0.0.1', port, connectTimeoutMs: 5000 })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
      message: `cannot connect to 127.0.0.1:${port}: connection refused (ECONNREFUSED)`,
    });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test('closing the client fails calls still in flight with ECLOSED', async () => {
    const c = await NfsClient.connect(clientOptions(fx.server));
    await fx.server.pause();
    try {
      const pending = c.getattr(c.root).catch((e: unknown) => e);
      await sleep(50);
      await c.close();
      expect(await pending).toMatchObject({ code: 'ECLOSED' });
    } finally {
      fx.server.resume();
    }
  });
});
