/**
 * Fencing an nfs attachment (userspace mounter): the FUSE server is cut off the NFS server at once,
 * its TCP connections reset so that WRITEs it still held never arrive, even once the network is
 * back. The "network" is a TCP proxy in this process in front of ganesha's NFS port, which can stop
 * reading (a stalled network) and resume. Every access to a mount here is asynchronous: a
 * synchronous one would wait on the proxy it blocks.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { userspacePids } from '../../../src/backends/nfs/mounters';
import { sleep, waitFor } from '../../harness/dockerd';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { BackendUnderTest, makeBackend } from './support/backend';
import { Link, ownerOfInode, Proxy, startProxy, tcpRows, runs, mountedAt, errnoOf, exitOf, ok, openFd, writeFd, fsyncFd, closeFd } from '../../harness/fencing';

// ------------------------------------------------------------------------------------------------
// the proxy's links, by owner

/** The open proxy links whose client socket belongs to `pid`. */
function linksOf(proxy: Proxy, pid: number): Link[] {
  return proxy.links.filter((link) => {
    if (link.ended !== 'open') return false;
    const row = tcpRows().find((r) => r.localPort === link.clientPort && r.remotePort === proxy.port);
    return row !== undefined && ownerOfInode(row.inode) === pid;
  });
}

// ------------------------------------------------------------------------------------------------

let g: GaneshaServer;
let proxy: Proxy;
let under: BackendUnderTest;
const children: ChildProcess[] = [];
const onServer = (...p: string[]) => path.join(g.exportDir, 'volumes', ...p);

beforeAll(async () => {
  g = await startGanesha();
  proxy = await startProxy(g.nfsPort);
  under = makeBackend(g, { port: proxy.port }, { workDir: fs.mkdtempSync('/tmp/nvnfs-fence-') });
  await under.backend.open();
});

afterAll(async () => {
  for (const c of children) {
    c.kill('SIGKILL');
    c.stdin?.destroy();
    c.stdout?.destroy();
  }
  await under?.cleanup();
  await proxy?.close();
  await g?.stop();
});

describe('nfs fence() of a userspace attachment', () => {
  test('fence() kills the FUSE server, resets its connections, detaches the mount; writes through it fail and attach() works again', async () => {
    const b = under.backend;
    await b.makeFolder('fenced', true);
    const mp = await b.attach('fenced');
    const fd = await openFd(path.join(mp, 'data', 'f'), 'w');
    await writeFd(fd, 'before\n');
    await fsyncFd(fd);
    const [server] = await userspacePids(mp);
    const links = linksOf(proxy, server);
    expect(links.length).toBeGreaterThan(0);

    await b.fence?.('fenced');

    expect(runs(server)).toBe(false);
    // Reset, not closed: no socket of its connections is left (a close would leave them in FIN_WAIT).
    expect(tcpRows().filter((r) => links.some((l) => l.clientPort === r.localPort))).toEqual([]);
    await Promise.all(links.map((l) => l.closed));
    expect(links.map((l) => l.ended)).toEqual(links.map(() => 'reset'));
    expect(mountedAt(mp)).toBe(false);
    expect(await b.health('fenced')).not.toBe('attached');
    expect(['EIO', 'ENOTCONN', 'ENOENT']).toContain(await errnoOf(writeFd(fd, 'after\n')));
    expect(['EIO', 'ENOTCONN', 'ENOENT']).toContain(await errnoOf(fsp.writeFile(path.join(mp, 'data', 'g'), 'after')));
    await closeFd(fd).catch(() => undefined);
    expect(fs.readFileSync(onServer('fenced', 'data', 'f'), 'utf8')).toBe('before\n');

    expect(await b.attach('fenced')).toBe(mp);
    expect(await b.health('fenced')).toBe('attached');
    expect(await fsp.readFile(path.join(mp, 'data', 'f'), 'utf8')).toBe('before\n');
    await fsp.writeFile(path.join(mp, 'data', 'g'), 'again');
    await b.detach('fenced');
    expect(fs.readFileSync(onServer('fenced', 'data', 'g'), 'utf8')).toBe('again');
  });

  test('WRITEs the FUSE server still held when the network stalled never reach the server after fence(), even once the network is back', async () => {
    const b = under.backend;
    await b.makeFolder('stalled', true);
    const mp = await b.attach('stalled');
    const [server] = await userspacePids(mp);
    const target = onServer('stalled', 'data', 'big');
    // A writer that opens its file while the network works, then writes once told to.
    const writer = spawn('sh', ['-c', 'exec 3>"$1"; echo ready; read go; dd if=/dev/zero bs=1M count=64 >&3', 'sh', path.join(mp, 'data', 'big')], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.push(writer);
    await new Promise((r) => writer.stdout?.once('data', r));
    const links = linksOf(proxy, server);
    proxy.pause();
    try {
      writer.stdin?.write('go\n');
      // Wait until the server holds bytes it cannot send: the proxy has stopped reading.
      const held = await waitFor(
        'the FUSE server to hold unsent bytes',
        () => {
          const total = tcpRows()
            .filter((r) => r.remotePort === proxy.port && links.some((l) => l.clientPort === r.localPort))
            .reduce((sum, r) => sum + r.txQueue, 0);
          return total > 16 * 1024 ? total : undefined;
        },
        20_000,
        100,
      );
      await sleep(300);
      // Read by the proxy, read but held by the paused stream, or in the proxy's receive queue.
      const arrivedOrQueued = links.map((l) => {
        const proxySide = tcpRows().find((r) => r.localPort === proxy.port && r.remotePort === l.clientPort);
        return l.fromClient + l.client.readableLength + (proxySide?.rxQueue ?? 0);
      });

      await b.fence?.('stalled');
      expect(runs(server)).toBe(false);
      // Reset: no orphan socket is left holding the unsent bytes (a close would leave one in FIN_WAIT1).
      expect(tcpRows().filter((r) => links.some((l) => l.clientPort === r.localPort))).toEqual([]);
      proxy.resume();
      await Promise.race([Promise.all(links.map((l) => l.closed)), sleep(15_000)]);

      expect(held).toBeGreaterThan(0);
      // Only what had already reached the proxy's host came through; the server's send queues were dropped.
      links.forEach((l, i) => expect(l.fromClient).toBeLessThanOrEqual(arrivedOrQueued[i]));
      expect(await exitOf(writer)).not.toBe(0);
      const sizeNow = () => (fs.existsSync(target) ? fs.statSync(target).size : 0);
      let size = -1;
      while (size !== sizeNow()) {
        size = sizeNow();
        await sleep(500);
      }
      expect(size).toBeLessThan(64 * 1024 * 1024);
    } finally {
      proxy.resume();
    }
  });

  test('fence() of a volume that is not attached succeeds and leaves other attachments alone', async () => {
    const b = under.backend;
    await b.makeFolder('bystander', true);
    await b.makeFolder('idle', true);
    const mp = await b.attach('bystander');
    const before = await userspacePids(mp);
    await expect(b.fence?.('idle')).resolves.toBeUndefined();
    await expect(b.fence?.('never-made')).resolves.toBeUndefined();
    expect(await userspacePids(mp)).toEqual(before);
    expect(await b.health('bystander')).toBe('attached');
    expect(await b.health('idle')).toBe('detached');
    await b.detach('bystander');
  });
});
