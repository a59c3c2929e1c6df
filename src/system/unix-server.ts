import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { RequestListener } from 'node:http';
import { NetvolError } from '../errors';

/** True when something accepts connections on the Unix socket at `file`. */
function socketAnswers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(file);
    const done = (alive: boolean) => {
      conn.destroy();
      resolve(alive);
    };
    conn.once('connect', () => done(true));
    conn.once('error', () => done(false));
    conn.setTimeout(1000, () => done(false));
  });
}

export interface SocketServer {
  close(): Promise<void>;
}

/**
 * Listens on a Unix socket with `mode` (0660 for the plugin socket dockerd uses, 0600 for the admin
 * socket). A stale socket left by a dead process is replaced; a socket that still answers means
 * another netvol runs, and start-up stops. `envName` is the setting to change named in that error.
 * `streams`: requests may carry bodies that take hours (a restore's archive), so Node's limit on
 * the time to receive a whole request (300 s by default) is lifted.
 */
export async function listenOnSocket(file: string, handler: RequestListener, mode = 0o660, envName = 'NETVOL_SOCKET', streams = false): Promise<SocketServer> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const st = await fs.lstat(file).catch(() => undefined);
  if (st) {
    if (!st.isSocket()) throw new NetvolError('CONFIG', `cannot listen on ${file}: a file that is not a socket is in the way`);
    if (await socketAnswers(file)) throw new NetvolError('CONFIG', `another process already serves ${file}: stop it first, or set ${envName} to another path`);
    await fs.unlink(file);
  }
  const server = http.createServer(streams ? { requestTimeout: 0 } : {}, handler);
  server.keepAliveTimeout = 65_000;
  const oldMask = process.umask(0o777 & ~mode);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  await fs.chmod(file, mode);
  return {
    close: async () => {
      await fs.unlink(file).catch(() => undefined);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
