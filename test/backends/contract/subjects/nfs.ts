/** The nfs backend against a real nfs-ganesha (test/harness/ganesha.ts), with the userspace data path. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NfsClient, mkdirp, rmrf } from '../../../../src/nfs';
import { GaneshaServer, startGanesha } from '../../../harness/ganesha';
import { makeBackend } from '../../../nfs/backend/support/backend';
import { rejection, type Subject } from '../subject';

export function nfsSubject(): Subject {
  let g: GaneshaServer;
  return {
    type: 'nfs',
    name: 'nas',
    async start() {
      g = await startGanesha();
    },
    async stop() {
      await g?.stop();
    },
    make: (o = {}) => makeBackend(g, { path: o.folder ?? 'volumes' }, { timeoutMs: o.timeoutMs }),
    onServer: (...parts) => path.join(g.exportDir, ...parts),
    freeSlackBytes: 256 * 1024 * 1024,
    usageCounts: 'allocated',
    // Through another NFS client, so the server itself drops the old handles.
    async recreate(folder, inside) {
      const client = await NfsClient.connect({ host: g.host, port: g.nfsPort, mountPort: g.mountPort, exportPath: g.exportPath, uid: 0, gid: 0 });
      try {
        await rmrf(client, folder);
        await mkdirp(client, `${folder}/${inside}`);
      } finally {
        await client.close();
      }
    },
    recreatedRootLog: /stale NFS file handle/,
    server: {
      restart: () => g.restart(),
      async crashAndRestart() {
        await g.crash();
        await g.startServer();
      },
      pause: () => g.pause(),
      async resume() {
        g.resume();
      },
      unreachable: async (timeoutMs) => makeBackend(g, { port: 9, mountPort: 9 }, { timeoutMs }),
    },
    async smallDisk() {
      const base = fs.mkdtempSync(path.join(os.tmpdir(), 'nvnfs-full-'));
      const img = path.join(base, 'disk.img');
      const dir = path.join(base, 'mnt');
      fs.mkdirSync(dir);
      execFileSync('truncate', ['-s', '24M', img]);
      execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', img]);
      execFileSync('mount', ['-o', 'loop', img, dir]);
      const small = await startGanesha({ exportDir: dir });
      return {
        dir,
        make: () => makeBackend(small),
        async dispose() {
          await small.stop();
          execFileSync('umount', ['-l', dir]);
          fs.rmSync(base, { recursive: true, force: true });
        },
      };
    },
    extraCases() {
      test('an export the server does not have fails with NOT_FOUND naming the backend and the export', async () => {
        const wrong = makeBackend(g, { export: '/no/such/export' });
        try {
          const err = await rejection(wrong.backend.open());
          expect(err.code).toBe('NOT_FOUND');
          expect(err.message).toMatch(/^backend nas: .*the server does not export \/no\/such\/export/);
        } finally {
          await wrong.cleanup();
        }
      });
    },
  };
}
