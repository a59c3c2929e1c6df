import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  IPPROTO_TCP,
  MOUNT_PROGRAM,
  MOUNT_VERSION,
  NFS_PROGRAM,
  NFS_VERSION,
  NfsClient,
  PMAP_PORT,
  RpcClient,
  authSys,
  exportList,
  lookupPort,
  mnt,
  pmapDump,
  pmapGetPort,
  pmapSet,
  pmapUnset,
  umnt,
} from '../../src/nfs';
import { GaneshaServer, startGanesha } from '../harness/ganesha';
import { clientOptions } from './fixture';

let g: GaneshaServer;
beforeAll(async () => {
  g = await startGanesha();
});
afterAll(async () => {
  await g?.stop();
});

describe('portmapper', () => {
  // While these run, rpcbind's NFS registrations must point at this server, so
  // it holds the harness lock; other files' restarts wait for it to stop.
  let ex: GaneshaServer;
  beforeAll(async () => {
    ex = await startGanesha({ exclusiveRpcbind: true });
  });
  afterAll(async () => {
    await ex?.stop();
  });

  test('GETPORT finds the NFS and MOUNT ports the server registered', async () => {
    expect(await lookupPort({ host: ex.host }, NFS_PROGRAM, NFS_VERSION)).toBe(ex.nfsPort);
    expect(await lookupPort({ host: ex.host }, MOUNT_PROGRAM, MOUNT_VERSION)).toBe(ex.mountPort);
  });

  test('SET, GETPORT, DUMP and UNSET agree for a private program number', async () => {
    const rpc = await RpcClient.connect({ host: ex.host, port: PMAP_PORT });
    const program = 0x40000000 + (process.pid % 0x1000000);
    try {
      expect(await pmapSet(rpc, { program, version: 1, protocol: IPPROTO_TCP, port: 4242 })).toBe(true);
      expect(await pmapGetPort(rpc, program, 1)).toBe(4242);
      expect(await pmapDump(rpc)).toContainEqual({ program, version: 1, protocol: IPPROTO_TCP, port: 4242 });
      expect(await pmapUnset(rpc, program, 1)).toBe(true);
      expect(await pmapGetPort(rpc, program, 1)).toBe(0);
    } finally {
      await pmapUnset(rpc, program, 1).catch(() => undefined);
      rpc.close();
    }
  });

  test('connect() without ports discovers them through the portmapper', async () => {
    const client = await NfsClient.connect({ host: ex.host, exportPath: ex.exportPath, uid: 0, gid: 0 });
    try {
      fs.writeFileSync(path.join(ex.exportDir, 'marker'), 'mine');
      const found = await client.lookupPath('/marker');
      expect((await client.read(found.handle, 0, 10)).data.toString()).toBe('mine');
    } finally {
      await client.close();
    }
  });

  test('an unregistered program makes GETPORT answer 0', async () => {
    expect(await lookupPort({ host: ex.host }, 0x4fffff00, 1)).toBe(0);
  });
});

describe('MOUNT v3', () => {
  let rpc: RpcClient;
  beforeAll(async () => {
    rpc = await RpcClient.connect({ host: g.host, port: g.mountPort, auth: authSys({ uid: 0, gid: 0 }) });
  });
  afterAll(() => rpc.close());

  test('MNT returns the root handle and AUTH_SYS among the flavors', async () => {
    const res = await mnt(rpc, g.exportPath);
    expect(res.handle.length).toBeGreaterThan(0);
    expect(res.handle.length).toBeLessThanOrEqual(64);
    expect(res.authFlavors).toContain(1);
    const client = await NfsClient.connect(clientOptions(g));
    try {
      expect(client.root.equals(res.handle)).toBe(true);
    } finally {
      await client.close();
    }
  });

  test('MNT of a path that is not exported fails with a typed error', async () => {
    await expect(mnt(rpc, '/definitely/not/exported')).rejects.toMatchObject({
      name: 'NfsError',
      procedure: 'MOUNT3.MNT',
      code: expect.stringMatching(/^(ENOENT|EACCES)$/),
    });
  });

  test('EXPORT lists the exported directory', async () => {
    const list = await exportList(rpc);
    expect(list.map((e) => e.path)).toContain(g.exportPath);
  });

  test('UMNT is accepted after MNT', async () => {
    await mnt(rpc, g.exportPath);
    await expect(umnt(rpc, g.exportPath)).resolves.toBeUndefined();
  });

  test('close({unmount}) sends UMNT and closes the connection', async () => {
    const client = await NfsClient.connect(clientOptions(g));
    await client.close({ unmount: true });
    await expect(client.null()).rejects.toMatchObject({ code: 'ECLOSED' });
  });
});

describe('source port', () => {
  test('privilegedPort binds a source port below 1024', async () => {
    const client = await NfsClient.connect(clientOptions(g, { privilegedPort: true }));
    try {
      await client.null();
      expect(client.rpc.localPort).toBeLessThan(1024);
      expect(client.rpc.localPort).toBeGreaterThanOrEqual(512);
    } finally {
      await client.close();
    }
  });

  test('without privilegedPort the source port is an ephemeral one', async () => {
    const client = await NfsClient.connect(clientOptions(g));
    try {
      expect(client.rpc.localPort).toBeGreaterThanOrEqual(1024);
    } finally {
      await client.close();
    }
  });
});
