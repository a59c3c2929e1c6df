/**
 * Fencing an sftp attachment: sshfs and its ssh are cut off the server at once, their TCP
 * connection reset so that what they still held to send never arrives, even once the network is
 * back. The "network" is a TCP proxy in this process between sshfs and sshd, which can stop reading
 * (a stalled network: bytes pile up in the client's send queue) and resume. The proxy lives in this
 * process, so every access to a mount here is asynchronous (a synchronous one would wait on the
 * proxy it blocks).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { sleep, waitFor } from '../harness/dockerd';
import { startSshd, Sshd } from '../harness/sshd';
import { BackendUnderTest, makeBackend } from './support/backend';
import { sshfsPidsFor } from './support/sshfs';
import { Link, ownerOfInode, Proxy, startProxy, tcpRows, runs, mountedAt, errnoOf, exitOf, ok, openFd, writeFd, fsyncFd, closeFd, TcpRow } from '../harness/fencing';

// ------------------------------------------------------------------------------------------------
// the proxy's links, by owner

/** The proxy link of the data path: the one whose client socket belongs to a process other than this one. */
function dataLink(proxy: Proxy): { link: Link; pid: number } {
  for (const link of proxy.links) {
    if (link.ended !== 'open') continue;
    const row = tcpRows().find((r) => r.localPort === link.clientPort && r.remotePort === proxy.port);
    const pid = row && ownerOfInode(row.inode);
    if (pid && pid !== process.pid) return { link, pid };
  }
  throw new Error('no open proxy connection belongs to another process');
}

// ------------------------------------------------------------------------------------------------

let sshd: Sshd;
let proxy: Proxy;
let under: BackendUnderTest;
let root: string;
const children: ChildProcess[] = [];
const loops: string[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  root = path.join(sshd.root, 'volumes');
  proxy = await startProxy(sshd.port);
  // Through the proxy: the host key is pinned by fingerprint, as known_hosts names sshd's own port.
  under = makeBackend(sshd, { port: proxy.port, knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint }, { workDir: fs.mkdtempSync('/tmp/nvw-fence-') });
  await under.backend.open();
});

afterAll(async () => {
  for (const c of children) {
    c.kill('SIGKILL');
    c.stdin?.destroy();
    c.stdout?.destroy();
  }
  for (const l of loops) spawn('losetup', ['-d', l]);
  await under?.cleanup();
  await proxy?.close();
  await sshd?.cleanup();
});

describe('sftp fence()', () => {
  test('fence() kills sshfs and its ssh, resets their connection, detaches the mount; writes through it fail and attach() works again', async () => {
    const b = under.backend;
    await b.makeFolder('fenced', true);
    const mp = await b.attach('fenced');
    const fd = await openFd(path.join(mp, 'data', 'f'), 'w');
    await writeFd(fd, 'before\n');
    await fsyncFd(fd);
    const [sshfs] = sshfsPidsFor(mp);
    const { link, pid: ssh } = dataLink(proxy);
    expect(fs.readFileSync(`/proc/${ssh}/comm`, 'utf8').trim()).toBe('ssh');
    expect(tcpRows().some((r) => r.localPort === link.clientPort)).toBe(true);

    await b.fence?.('fenced');

    expect(runs(sshfs)).toBe(false);
    expect(runs(ssh)).toBe(false);
    // Reset, not closed: no socket of the connection is left (a close would leave one in FIN_WAIT).
    expect(tcpRows().filter((r) => r.localPort === link.clientPort)).toEqual([]);
    await link.closed;
    expect(link.ended).toBe('reset');
    expect(mountedAt(mp)).toBe(false);
    expect(await b.health('fenced')).not.toBe('attached');
    expect(['EIO', 'ENOTCONN', 'ENOENT']).toContain(await errnoOf(writeFd(fd, 'after\n')));
    expect(['EIO', 'ENOTCONN', 'ENOENT']).toContain(await errnoOf(fsp.writeFile(path.join(mp, 'data', 'g'), 'after')));
    await closeFd(fd).catch(() => undefined);
    expect(fs.readFileSync(path.join(root, 'fenced', 'data', 'f'), 'utf8')).toBe('before\n');

    expect(await b.attach('fenced')).toBe(mp);
    expect(await b.health('fenced')).toBe('attached');
    expect(await fsp.readFile(path.join(mp, 'data', 'f'), 'utf8')).toBe('before\n');
    await fsp.writeFile(path.join(mp, 'data', 'g'), 'again');
    expect(fs.readFileSync(path.join(root, 'fenced', 'data', 'g'), 'utf8')).toBe('again');
    await b.detach('fenced');
  });

  test('bytes that sshfs still held when the network stalled never reach the server after fence(), even once the network is back', async () => {
    const b = under.backend;
    await b.makeFolder('stalled', true);
    const mp = await b.attach('stalled');
    const { link, pid: ssh } = dataLink(proxy);
    const target = path.join(root, 'stalled', 'data', 'big');
    // A writer that opens its file while the network works, then writes once told to.
    const writer = spawn('sh', ['-c', 'exec 3>"$1"; echo ready; read go; dd if=/dev/zero bs=256k count=400 >&3', 'sh', path.join(mp, 'data', 'big')], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.push(writer);
    await new Promise((r) => writer.stdout?.once('data', r));
    proxy.pause();
    try {
      writer.stdin?.write('go\n');
      // Wait until ssh holds bytes it cannot send: the proxy has stopped reading, its window is shut.
      const held = await waitFor(
        'ssh to hold unsent bytes',
        () => {
          const row = tcpRows().find((r) => r.localPort === link.clientPort && r.remotePort === proxy.port);
          return row && row.txQueue > 16 * 1024 ? row.txQueue : undefined;
        },
        20_000,
        100,
      );
      await sleep(300);
      const proxySide = tcpRows().find((r) => r.localPort === proxy.port && r.remotePort === link.clientPort) as TcpRow;
      // Read by the proxy, read but held by the paused stream, or in the proxy's receive queue.
      const arrivedOrQueued = link.fromClient + link.client.readableLength + proxySide.rxQueue;

      await b.fence?.('stalled');
      expect(runs(ssh)).toBe(false);
      // Reset: no orphan socket is left holding the unsent bytes (a close would leave one in FIN_WAIT1).
      expect(tcpRows().filter((r) => r.localPort === link.clientPort)).toEqual([]);
      proxy.resume();
      await Promise.race([link.closed, sleep(15_000)]);

      expect(held).toBeGreaterThan(0);
      // Only what had already reached the proxy's host came through; ssh's send queue was dropped.
      expect(link.fromClient).toBeLessThanOrEqual(arrivedOrQueued);
      expect(await exitOf(writer)).not.toBe(0);
      // What the server wrote settles at no more than what got through before the fence.
      const sizeNow = () => (fs.existsSync(target) ? fs.statSync(target).size : 0);
      let size = -1;
      while (size !== sizeNow()) {
        size = sizeNow();
        await sleep(500);
      }
      expect(size).toBeLessThanOrEqual(arrivedOrQueued);
    } finally {
      proxy.resume();
    }
  });

  test('fence() of a volume that is not attached succeeds and leaves other attachments alone', async () => {
    const b = under.backend;
    await b.makeFolder('bystander', true);
    await b.makeFolder('idle', true);
    const mp = await b.attach('bystander');
    const before = sshfsPidsFor(mp);
    await expect(b.fence?.('idle')).resolves.toBeUndefined();
    await expect(b.fence?.('never-made')).resolves.toBeUndefined();
    expect(sshfsPidsFor(mp)).toEqual(before);
    expect(await b.health('bystander')).toBe('attached');
    expect(await b.health('idle')).toBe('detached');
    await b.detach('bystander');
  });

  test('a loop device over an image file on the sshfs mount fails its I/O after fence()', async () => {
    const b = under.backend;
    await b.makeFolder('imgvol', false);
    const mp = await b.attach('imgvol');
    const img = path.join(mp, 'data.img');
    await fsp.writeFile(img, '');
    await fsp.truncate(img, 16 * 1024 * 1024);
    const loop = await ok('losetup', ['-f', '--show', img]);
    loops.push(loop);
    const dd = (seek: number) => spawn('dd', ['if=/dev/urandom', `of=${loop}`, 'bs=64k', 'count=4', `seek=${seek}`, 'oflag=direct'], { stdio: 'ignore' });
    expect(await exitOf(dd(0))).toBe(0);

    await b.fence?.('imgvol');

    const late = dd(8);
    children.push(late);
    const code = await Promise.race([exitOf(late), sleep(20_000).then(() => 'still running')]);
    expect(typeof code).toBe('number');
    expect(code).not.toBe(0);
    expect(fs.statSync(path.join(root, 'imgvol', 'data.img')).size).toBe(16 * 1024 * 1024);
    await ok('losetup', ['-d', loop]);
    loops.pop();
    await b.detach('imgvol');
  });
});
