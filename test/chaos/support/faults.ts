/**
 * Server faults while a volume is in use. Each round: a volume is created and mounted, a writer
 * process (a container, in effect) writes and fsyncs files into it, and at a random moment the
 * server fails — sshd or ganesha killed, the server's filesystem full, permission denied on the
 * backend path, or the server's address made to drop all traffic. While the fault lasts, Create,
 * Mount and Get must each answer within the daemon's timeoutSeconds, with a readable Err when they
 * cannot do their job. Then the server comes back, and the volume must be usable again with every
 * file whose fsync succeeded intact.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { mountsUnder, settleWithin, sleep } from '../../harness/dockerd';
import { startGanesha, type GaneshaServer } from '../../harness/ganesha';
import { pluginRequest, startNetvol, type BackendConfig, type Netvol, type PluginResponse } from '../../harness/netvol';
import { sftpOptions, startSshd, type Sshd } from '../../harness/sshd';
import { answerProblem, helperPids, knownBug, orphanProblems } from './checks';
import { foldersOf, tearDown } from './fuzz';
import { MountModel } from './model';
import { emptyResult, interruption, type PhaseResult, type Progress } from './phases';

export type FaultKind = 'sshd-kill' | 'ganesha-kill' | 'full' | 'permission' | 'unresponsive';
export const FAULT_KINDS: FaultKind[] = ['sshd-kill', 'ganesha-kill', 'full', 'permission', 'unresponsive'];

/** The daemon's timeoutSeconds in these runs, and the slack a loaded 2-core machine gets on top. */
export const TIMEOUT_SECONDS = 5;
const SLACK_MS = 3000;

/** One server with a way to break it and mend it. */
interface Rig {
  backends: Record<string, BackendConfig>;
  /** Volume options (e.g. image layout) for round `i`. */
  optsFor(i: number): Record<string, string> | null;
  inject(): Promise<void>;
  restore(): Promise<void>;
  cleanup(): Promise<void>;
  /** Faults after which writes fail for a reason the server gives (ENOSPC, EACCES): fsyncs that fail are expected. */
  describe: string;
}

function sh(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  return r.stdout;
}

async function sftpRig(kind: FaultKind): Promise<Rig> {
  if (kind === 'unresponsive') return unresponsiveRig();
  const sshd: Sshd = await startSshd();
  if (kind === 'sshd-kill') {
    return {
      backends: { remote: { type: 'sftp', ...sftpOptions(sshd) } },
      optsFor: (i) => (i % 2 === 1 ? { size: '16M' } : null),
      inject: () => sshd.kill(),
      restore: () => sshd.restart(),
      cleanup: () => sshd.cleanup(),
      describe: 'sshd SIGKILLed (with its sessions) mid-write, then started again',
    };
  }
  if (kind === 'full') {
    // A small filesystem of its own as the SFTP root of the backend: room enough that the writer
    // (64 KiB files, fsynced) cannot fill it before the fault on a fast machine, which would leave
    // it full after the fault is taken back (a 40 MiB one did, in a quiet run).
    const small = path.join(sshd.root, 'small');
    fs.mkdirSync(small);
    sh('mount', ['-t', 'tmpfs', '-o', 'size=160m,mode=0755', 'chaos-full', small]);
    const filler = path.join(small, 'filler');
    return {
      backends: { remote: { type: 'sftp', ...sftpOptions(sshd, { path: small }) } },
      optsFor: () => null,
      async inject() {
        // Fill what is left; the writer's next writes meet ENOSPC.
        spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=400'], { stdio: 'ignore', timeout: 30_000 });
      },
      async restore() {
        fs.rmSync(filler, { force: true });
      },
      async cleanup() {
        spawnSync('umount', [small], { stdio: 'ignore' });
        await sshd.cleanup();
      },
      describe: 'the server\'s filesystem (a 160M tmpfs as the SFTP root) filled up, then freed',
    };
  }
  // permission: the backend logs in as an ordinary user; its path is taken away from that user.
  const root = path.join(sshd.root, 'nobodys');
  fs.mkdirSync(root);
  const own = (): void => void sh('chown', ['-R', 'nobody:nogroup', root]);
  own();
  return {
    backends: { remote: { type: 'sftp', ...sftpOptions(sshd, { username: 'nobody', path: root }) } },
    optsFor: () => null,
    async inject() {
      sh('chown', ['-R', 'root:root', root]);
      sh('chmod', ['-R', 'go-w', root]);
    },
    async restore() {
      own();
    },
    cleanup: () => sshd.cleanup(),
    describe: 'permission denied: the backend path (and every volume folder) given to root while the backend logs in as nobody, then given back',
  };
}

async function nfsRig(): Promise<Rig> {
  const g: GaneshaServer = await startGanesha();
  return {
    backends: { nas: { type: 'nfs', server: g.host, export: g.exportPath, port: g.nfsPort, mountPort: g.mountPort, path: 'volumes', mounter: 'userspace' } },
    optsFor: (i) => (i % 2 === 1 ? { size: '16M' } : null),
    inject: () => g.crash(),
    restore: () => g.startServer(),
    cleanup: () => g.stop(),
    describe: 'nfs-ganesha SIGKILLed mid-write, then started again',
  };
}

/**
 * sshd reached through an address in a network namespace this rig creates: a bridge of its own in
 * the root namespace (10.251.x.1, where sshd listens), a namespace on it (10.251.x.2) running a
 * TCP forwarder to sshd. The fault sets the namespace's bridge port down: packets to the address
 * are dropped, nothing is refused or reset.
 */
async function unresponsiveRig(): Promise<Rig> {
  const tag = `nvc${randomBytes(2).toString('hex')}`;
  const used = sh('ip', ['-4', 'addr', 'show']) + sh('ip', ['-4', 'route', 'show', 'table', 'all']);
  let net = '';
  for (let i = 0; i < 50 && !net; i++) {
    const candidate = `10.251.${randomInt(0, 256)}`;
    if (!used.includes(`${candidate}.`)) net = candidate;
  }
  if (!net) throw new Error('no free /24 in 10.251.0.0/16 for the unresponsive-server rig');
  const bridge = `${tag}br`;
  const port = `${tag}b`;
  const netns = `${tag}-srv`;
  const undo: Array<() => void> = [];
  let forwarder: ChildProcess | undefined;
  const cleanupNet = (): void => {
    if (forwarder?.pid) {
      try {
        process.kill(forwarder.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const u of undo.reverse()) {
      try {
        u();
      } catch {
        /* already gone */
      }
    }
  };
  let sshd: Sshd | undefined;
  try {
    sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    undo.push(() => sh('ip', ['link', 'del', bridge]));
    sh('ip', ['addr', 'add', `${net}.1/24`, 'dev', bridge]);
    sh('ip', ['link', 'set', bridge, 'up']);
    sh('ip', ['netns', 'add', netns]);
    undo.push(() => sh('ip', ['netns', 'del', netns]));
    sh('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', `${tag}i`]);
    undo.push(() => sh('ip', ['link', 'del', port]));
    sh('ip', ['link', 'set', `${tag}i`, 'netns', netns]);
    sh('ip', ['link', 'set', port, 'master', bridge]);
    sh('ip', ['link', 'set', port, 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${net}.2/24`, 'dev', `${tag}i`]);
    sh('ip', ['-n', netns, 'link', 'set', `${tag}i`, 'up']);
    sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    sshd = await startSshd({ listenAddress: `${net}.1` });
    const script = `const net=require('net');net.createServer((c)=>{const u=net.connect(${sshd.port},'${net}.1');c.pipe(u);u.pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());}).listen(2222,'${net}.2',()=>console.log('ready'));`;
    forwarder = spawn('nsenter', [`--net=/var/run/netns/${netns}`, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the forwarder in the namespace did not start')), 20_000);
      forwarder!.stdout!.once('data', () => {
        clearTimeout(t);
        resolve();
      });
    });
  } catch (err) {
    await sshd?.cleanup();
    cleanupNet();
    throw err;
  }
  // known_hosts names the server as [host]:port: give the namespace address the same key.
  const known = fs.readFileSync(sshd.knownHostsFile, 'utf8').replace(`[${net}.1]:${sshd.port}`, `[${net}.2]:2222`);
  const knownFile = path.join(sshd.dir, 'known_hosts_ns');
  fs.writeFileSync(knownFile, known);
  const s = sshd;
  return {
    backends: { remote: { type: 'sftp', ...sftpOptions(s, { host: `${net}.2`, port: 2222, knownHostsFile: knownFile }) } },
    optsFor: () => null,
    inject: async () => void sh('ip', ['link', 'set', port, 'down']),
    restore: async () => void sh('ip', ['link', 'set', port, 'up']),
    async cleanup() {
      await s.cleanup();
      cleanupNet();
    },
    describe: 'the server\'s address (in a network namespace) drops every packet, then answers again',
  };
}

/** A process writing 64 KiB files into a folder, each fsynced; it reports each file it finished. */
interface Writer {
  acked: Map<string, string>;
  failures: string[];
  stop(): Promise<void>;
}

const WRITER = `
const fs = require('fs'), crypto = require('crypto'), path = require('path');
const dir = process.env.CHAOS_DIR, prefix = process.env.CHAOS_PREFIX;
(async () => {
  for (let i = 0; ; i++) {
    const name = prefix + i, data = crypto.randomBytes(65536);
    try {
      const fh = await fs.promises.open(path.join(dir, name), 'w');
      try { await fh.write(data); await fh.sync(); } finally { await fh.close(); }
      process.stdout.write('ok ' + name + ' ' + crypto.createHash('sha256').update(data).digest('hex') + '\\n');
    } catch (e) {
      process.stdout.write('err ' + name + ' ' + e.code + '\\n');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
})();`;

function startWriter(dir: string, prefix: string): Writer {
  // The folder goes by environment, not argv: the run's helper check reads argv.
  const c = spawn(process.execPath, ['-e', WRITER], { env: { ...process.env, CHAOS_DIR: dir, CHAOS_PREFIX: prefix }, stdio: ['ignore', 'pipe', 'ignore'] });
  const acked = new Map<string, string>();
  const failures: string[] = [];
  let partial = '';
  c.stdout!.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      const [what, name, detail] = l.split(' ');
      if (what === 'ok') acked.set(name, detail);
      else failures.push(`${name}: ${detail}`);
    }
  });
  const exited = new Promise<void>((r) => c.on('exit', () => r()));
  return {
    acked,
    failures,
    async stop() {
      c.kill('SIGKILL');
      // A write stuck on a dead server ends when the mount gives up; don't wait for ever.
      await settleWithin(exited, 15_000);
    },
  };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export async function faultPhase(o: { kind: FaultKind; rounds: number; seed: number; progress?: Progress; strict?: boolean }): Promise<PhaseResult> {
  const result = emptyResult(`server fault: ${o.kind}`);
  const started = Date.now();
  const rig = o.kind === 'ganesha-kill' ? await nfsRig() : await sftpRig(o.kind);
  let nv: Netvol | undefined;
  const model = new MountModel();
  try {
    nv = await startNetvol({ backends: rig.backends, extraConfig: { timeoutSeconds: TIMEOUT_SECONDS, logLevel: 'info' } });
    const limitMs = TIMEOUT_SECONDS * 1000 + SLACK_MS;
    const call = async (route: string, body: Record<string, unknown>, during = false): Promise<PluginResponse | undefined> => {
      result.requests++;
      const t0 = Date.now();
      let r: PluginResponse;
      try {
        r = await pluginRequest(nv!.socket, route, body, { timeoutMs: 120_000 });
      } catch (err) {
        result.problems.push(`${route} ${String(body.Name)}: no answer: ${(err as Error).message}`);
        return undefined;
      }
      const ms = Date.now() - t0;
      const found: string[] = [];
      const bad = answerProblem(route, r);
      if (bad) found.push(bad);
      if (r.json?.Err) {
        result.worstErrMs = Math.max(result.worstErrMs, ms);
        if (!String(r.json.Err).includes(String(body.Name))) found.push(`${route} ${String(body.Name)}: the Err does not name the volume: ${r.json.Err}`);
      }
      for (const p of found) {
        const bug = o.strict ? undefined : knownBug(body, p);
        if (bug) result.knownBugs[bug] = (result.knownBugs[bug] ?? 0) + 1;
        else result.problems.push(p);
      }
      if (during && ms > limitMs) {
        const slow = `${route} ${String(body.Name)} took ${ms} ms during the fault (timeoutSeconds is ${TIMEOUT_SECONDS})`;
        result.problems.push(slow);
      }
      return r;
    };
    const ok = (r?: PluginResponse): boolean => !!r && r.status === 200 && !r.json?.Err;
    const mountpoint = (name: string): string => path.join(foldersOf(nv!).mountRoot, name);

    for (let round = 0; round < o.rounds && !interruption.requested; round++) {
      const [delayMs] = fc.sample(fc.integer({ min: 100, max: 1500 }), { numRuns: 1, seed: o.seed + round });
      const name = `flt-${o.kind}-${round}`;
      const what = `round ${round} (${name})`;
      if (!ok(await call('VolumeDriver.Create', { Name: name, Opts: rig.optsFor(round) }))) {
        result.problems.push(`${what}: Create failed before the fault`);
        continue;
      }
      if (!ok(await call('VolumeDriver.Mount', { Name: name, ID: 'c1' }))) {
        result.problems.push(`${what}: Mount failed before the fault`);
        continue;
      }
      model.mounted(name, 'c1');
      const writer = startWriter(mountpoint(name), `r${round}-`);
      for (let waited = 0; writer.acked.size < 3 && waited < 30_000; waited += 100) await sleep(100);
      if (writer.acked.size < 3) result.problems.push(`${what}: the writer could not write 3 files before the fault (${writer.failures.slice(0, 3).join(', ')})`);
      await sleep(delayMs);
      const before = new Map(writer.acked);
      await rig.inject();
      result.faults++;
      const faultAt = Date.now();
      // While the server is broken: each request answers in time, with an Err when it cannot work.
      const other = `flt-${o.kind}-${round}-new`;
      const created = await call('VolumeDriver.Create', { Name: other, Opts: rig.optsFor(round) }, true);
      if (ok(created) && o.kind !== 'full') result.problems.push(`${what}: Create of ${other} succeeded while the server was broken (${rig.describe})`);
      const mounted2 = await call('VolumeDriver.Mount', { Name: name, ID: 'c2' }, true);
      if (ok(mounted2)) model.mounted(name, 'c2');
      await call('VolumeDriver.Get', { Name: name }, true);
      await sleep(Math.max(0, 1000 - (Date.now() - faultAt)));
      await writer.stop();
      await rig.restore();
      // Back: the volume must work again once its containers are restarted.
      // (dockerd does not retry a failed Unmount; an operator would, so the run does, and notes it.)
      for (const id of ['c1', 'c2']) {
        for (let attempt = 1; model.mountsOf(name)[id] !== undefined; attempt++) {
          const r = await call('VolumeDriver.Unmount', { Name: name, ID: id });
          if (ok(r)) model.unmounted(name, id);
          else if (attempt < 4) {
            result.notes.push(`${what}: Unmount ${id} after the server came back failed (attempt ${attempt}): ${String(r?.json?.Err ?? r?.raw).slice(0, 200)}`);
            await sleep(2000);
          } else {
            result.problems.push(`${what}: Unmount ${id} after the server came back failed ${attempt} times: ${r?.raw.slice(0, 300)}`);
            break;
          }
        }
      }
      let usable = false;
      for (let attempt = 0; attempt < 5 && !usable; attempt++) {
        const r = await call('VolumeDriver.Mount', { Name: name, ID: 'c3' });
        if (ok(r)) usable = true;
        else await sleep(2000);
      }
      if (!usable) {
        result.problems.push(`${what}: the volume cannot be mounted again after the server came back`);
        continue;
      }
      model.mounted(name, 'c3');
      try {
        const probe = randomBytes(4096);
        fs.writeFileSync(path.join(mountpoint(name), 'after'), probe);
        if (sha(fs.readFileSync(path.join(mountpoint(name), 'after'))) !== sha(probe)) result.problems.push(`${what}: a file written after the fault reads back different`);
      } catch (err) {
        result.problems.push(`${what}: the volume is mounted again but not usable: ${(err as Error).message}`);
      }
      for (const [file, want] of writer.acked) {
        let got: string;
        try {
          got = sha(fs.readFileSync(path.join(mountpoint(name), file)));
        } catch (err) {
          got = `unreadable (${(err as NodeJS.ErrnoException).code})`;
        }
        if (got !== want) {
          result.checksumMismatches++;
          result.problems.push(`${what}: file ${file}, fsynced ${before.has(file) ? 'before' : 'after'} the fault, is ${got.slice(0, 16)}, was ${want.slice(0, 16)}`);
        }
      }
      result.notes.push(`${what}: ${before.size} files fsynced before the fault, ${writer.acked.size - before.size} after, ${writer.failures.length} writes refused`);
      if (ok(await call('VolumeDriver.Unmount', { Name: name, ID: 'c3' }))) model.unmounted(name, 'c3');
      result.cycles++;
      o.progress?.(`${result.phase}: round ${round + 1} of ${o.rounds}`);
    }
    const end = await tearDown(nv, model);
    const f = foldersOf(nv);
    const left = [...end, ...orphanProblems(f, new MountModel()), ...helperPids(f).map((p) => `helper process ${p} left after tear-down`)];
    result.orphans += left.filter((p) => /orphan|helper|mounted/.test(p)).length;
    result.problems.push(...left);
    if (mountsUnder(nv.root).length > 0) result.problems.push(`mounts left under the daemon's folder: ${mountsUnder(nv.root).map((m) => m.mountPoint).join(', ')}`);
  } finally {
    await nv?.cleanup();
    await rig.cleanup();
  }
  result.notes.unshift(`${rig.describe}; timeoutSeconds ${TIMEOUT_SECONDS}`);
  result.durationMs = Date.now() - started;
  return result;
}
