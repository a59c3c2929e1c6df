/**
 * The nfs backend's control connection when one call finds the server unreachable and drops the
 * connection under others still waiting for their answer (they fail with ECLOSED): a call that
 * only reads is sent again on a new connection; one that changes something is not (it may have run).
 */
import { ControlConnection } from '../../src/backends/nfs/connection';
import { NfsClient, RpcError } from '../../src/nfs';
import { createLogger } from '../../src/log';

/** A stand-in client: close() fails every call still waiting, as the library's does. */
function fakeClient(id: number) {
  const waiting: Array<(err: Error) => void> = [];
  return {
    id,
    root: Buffer.from([id]),
    wait: () => new Promise<never>((_, reject) => waiting.push(reject)),
    close: async () => {
      for (const reject of waiting.splice(0)) reject(new RpcError('ECLOSED', 'NFS3.READ: client closed'));
    },
  };
}

let clients: Array<ReturnType<typeof fakeClient>>;

beforeEach(() => {
  clients = [];
  jest.spyOn(NfsClient, 'connect').mockImplementation(async () => {
    const c = fakeClient(clients.length + 1);
    clients.push(c);
    return c as unknown as NfsClient;
  });
});

afterEach(() => jest.restoreAllMocks());

const connection = () =>
  new ControlConnection({ backend: 'nas', target: { host: '127.0.0.1', exportPath: '/export' } as never, folder: '', timeoutMs: 5000, logger: createLogger('error') });

/** Two calls on one connection: `first` waits for an answer; meanwhile the second finds the server unreachable. */
async function cutOff(readOnly: boolean): Promise<string> {
  const conn = connection();
  const first = conn.use(
    'reading volume.json',
    async (s) => {
      const c = s.client as unknown as ReturnType<typeof fakeClient>;
      if (c.id === 1) return c.wait();
      return `read on connection ${c.id}`;
    },
    'vol',
    undefined,
    readOnly,
  );
  await new Promise((r) => setImmediate(r));
  await expect(conn.use('listing', async () => Promise.reject(new RpcError('ETIMEDOUT', 'NFS3.READDIR: no answer')))).rejects.toThrow();
  return first.then(
    (v) => v,
    (err: Error) => `failed: ${err.message}`,
  );
}

test('a read cut off by a dropped connection is sent again on a new one', async () => {
  expect(await cutOff(true)).toBe('read on connection 2');
  expect(clients).toHaveLength(2);
});

test('a call that changes something is not sent again: it fails, naming the backend', async () => {
  expect(await cutOff(false)).toMatch(/^failed: backend nas: reading volume.json/);
});
