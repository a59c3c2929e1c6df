/**
 * Randomized failover trials (issue 11): a container on host A writes files into an image volume,
 * each one written and synced, with a sequence number; A's network is cut at a random moment;
 * host B runs a container on the same volume (takes it over), writes and syncs its own files; A's
 * network comes back and A's container is removed. Then, on the server, `e2fsck -fn` of data.img
 * must be clean, and every file B synced — and every file A synced before the cut — must be there
 * with its content. All along, every 200 ms, the trial counts samples where two hosts have the
 * image attached read-write at once (a loop device over that host's view of data.img).
 *
 * A library: the multihost tier runs a few trials, `npm run trials` runs many and prints a table.
 */
import * as path from 'node:path';
import { sleep } from '../harness/dockerd';
import { BackendName, BUSYBOX_IMAGE, Cluster, Host, LEASE_SECONDS, runArgs, within } from './support/cluster';
import { fileContent, fsckImage, readImageRoot } from './support/volumes';

/** Bytes of each file a trial writes. */
const FILE_BYTES = 16 * 1024;
/** Files B writes after taking over. */
const B_FILES = 10;
/** How long after the cut B keeps asking for the volume. */
const TAKEOVER_DEADLINE_MS = (LEASE_SECONDS * 4 + 30) * 1000;
const SAMPLE_MS = 200;

export interface TrialOptions {
  backend: BackendName;
  /** Trial number: picks A and B among the hosts in turn. */
  index: number;
  /** Random numbers in [0, 1): the moment of the cut. */
  random: () => number;
  /** Longest wait, after A's first synced file, before the cut. Default 3000 ms. */
  maxCutDelayMs?: number;
  log?: (line: string) => void;
}

export interface TrialResult {
  backend: BackendName;
  index: number;
  volume: string;
  a: string;
  b: string;
  cutDelayMs: number;
  /** B's container started on the volume. */
  takeover: boolean;
  /** From the cut to B's `docker run` returning with the container started. */
  takeoverMs?: number;
  /** How many times B asked (a refused Mount is asked again until the deadline). */
  takeoverAttempts: number;
  /** The first refusal B got, if any. */
  firstRefusal?: string;
  /** Samples with two or more hosts attached read-write at once. */
  doubleAttachSamples: number;
  /** The hosts seen attached read-write at once, per double sample (first few). */
  doubleAttachSeen: string[];
  fsckClean: boolean;
  fsckOutput?: string;
  /** Files B synced, and files A synced before the cut. */
  bSynced: number;
  aSyncedBeforeCut: number;
  /** Synced files missing from the image or with other content. */
  lostFiles: string[];
  /** Anything else that went wrong (cleanup, unexpected exits). */
  problems: string[];
  durationMs: number;
}

/** A small seeded generator (mulberry32), so a run can be repeated with its seed. */
export function seededRandom(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shell for a container that writes `<tag>-<n>` files, each synced, printing `synced <tag>-<n>` after each. */
function writerScript(tag: string, count: number | undefined): string {
  const each = `yes "${tag}-$i" | head -c ${FILE_BYTES} > /d/${tag}-$i && sync /d/${tag}-$i && echo "synced ${tag}-$i"`;
  return count === undefined
    ? `i=0; while true; do i=$((i+1)); ${each} || { echo "failed ${tag}-$i"; sleep 0.2; }; done`
    : `for i in $(seq 1 ${count}); do ${each} || exit 1; done`;
}

/** `synced <name>` lines of a container's log, with dockerd's timestamp of each (ms). */
async function syncedLines(h: Host, container: string): Promise<Array<{ name: string; at: number }>> {
  const r = await h.docker(['logs', '-t', container], { timeoutMs: 30_000 });
  const out: Array<{ name: string; at: number }> = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+)\s+synced (\S+)$/.exec(line.trim());
    if (m) out.push({ name: m[2], at: Date.parse(m[1]) });
  }
  return out;
}

export async function runTrial(cluster: Cluster, o: TrialOptions): Promise<TrialResult> {
  const started = Date.now();
  const log = o.log ?? (() => undefined);
  const hosts = cluster.hosts;
  const A = hosts[o.index % hosts.length];
  const B = hosts[(o.index + 1) % hosts.length];
  const volume = `tr-${cluster.prefix}-${o.backend}-${o.index}`;
  const image = path.join(cluster.volumeDir(o.backend, volume), 'data.img');
  const ca = `ta-${volume}`;
  const cb = `tb-${volume}`;
  const cutDelayMs = Math.floor(o.random() * (o.maxCutDelayMs ?? 3000));
  const result: TrialResult = {
    backend: o.backend,
    index: o.index,
    volume,
    a: A.name,
    b: B.name,
    cutDelayMs,
    takeover: false,
    takeoverAttempts: 0,
    doubleAttachSamples: 0,
    doubleAttachSeen: [],
    fsckClean: false,
    bSynced: 0,
    aSyncedBeforeCut: 0,
    lostFiles: [],
    problems: [],
    durationMs: 0,
  };

  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rw = [...new Set(cluster.loopAttachments(volume).filter((l) => !l.readOnly).map((l) => l.host))].sort();
      if (rw.length > 1) {
        result.doubleAttachSamples++;
        if (result.doubleAttachSeen.length < 5) result.doubleAttachSeen.push(rw.join('+'));
      }
      await sleep(SAMPLE_MS);
    }
  })();

  let cutAt = 0;
  try {
    await A.dockerOk(['volume', 'create', '-d', 'netvol', '-o', `backend=${o.backend}`, '-o', 'size=64M', volume]);
    await A.dockerOk(runArgs(['-d', '--name', ca, '-v', `${volume}:/d`, BUSYBOX_IMAGE, 'sh', '-c', writerScript('a', undefined)]), { timeoutMs: 150_000 });
    // Cut only once A has written something: a random moment after its first synced file.
    const firstDeadline = Date.now() + 60_000;
    while ((await syncedLines(A, ca)).length === 0) {
      if (Date.now() > firstDeadline) throw new Error(`the container on ${A.name} synced nothing within 60 s`);
      await sleep(100);
    }
    await sleep(cutDelayMs);
    await A.cut();
    cutAt = Date.now();
    log(`trial ${o.index} (${o.backend}): ${A.name} cut ${cutDelayMs} ms after its first synced file; ${B.name} takes over`);

    // B asks for the volume until its container starts.
    for (;;) {
      result.takeoverAttempts++;
      const r = await B.docker(runArgs(['-d', '--name', cb, '-v', `${volume}:/d`, BUSYBOX_IMAGE, 'sh', '-c', writerScript('b', B_FILES)]), { timeoutMs: 150_000 });
      if (r.code === 0) {
        result.takeover = true;
        result.takeoverMs = Date.now() - cutAt;
        break;
      }
      result.firstRefusal ??= r.stderr.trim();
      await B.docker(['rm', '-f', cb], { timeoutMs: 60_000 });
      if (Date.now() - cutAt > TAKEOVER_DEADLINE_MS) break;
      await sleep(1000);
    }

    if (result.takeover) {
      const waited = await B.docker(['wait', cb], { timeoutMs: 120_000 });
      if (waited.stdout.trim() !== '0') result.problems.push(`the container on ${B.name} exited ${waited.stdout.trim()}: ${(await B.docker(['logs', cb])).stderr.trim().slice(0, 300)}`);
    }
    const bLines = result.takeover ? await syncedLines(B, cb) : [];
    result.bSynced = bLines.length;

    await A.restore();
    // Time for anything A still holds to reach the server, if it could.
    await sleep(2000);
    const aLines = (await syncedLines(A, ca)).filter((l) => l.at < cutAt);
    result.aSyncedBeforeCut = aLines.length;
    await A.docker(['rm', '-f', ca], { timeoutMs: 90_000 });
    await B.docker(['rm', '-f', cb], { timeoutMs: 90_000 });
    const released = Date.now() + 30_000;
    while (cluster.loopAttachments(volume).length > 0 && Date.now() < released) await sleep(200);
    const still = cluster.loopAttachments(volume);
    if (still.length > 0) result.problems.push(`still attached 30 s after both containers were removed: ${still.map((l) => `${l.host} ${l.device}`).join(', ')}`);

    const fsck = await fsckImage(image);
    result.fsckClean = fsck.clean;
    if (!fsck.clean) result.fsckOutput = fsck.output.split('\n').slice(0, 15).join('\n');
    let files = new Map<string, Buffer>();
    try {
      files = readImageRoot(image);
    } catch (err) {
      result.problems.push((err as Error).message);
    }
    for (const l of [...bLines, ...aLines]) {
      const got = files.get(l.name);
      if (!got || !got.equals(fileContent(l.name, FILE_BYTES))) result.lostFiles.push(l.name);
    }
  } catch (err) {
    result.problems.push((err as Error).message.split('\n').slice(0, 6).join('\n'));
  } finally {
    sampling = false;
    await sampler;
    if (A.isCut) await A.restore().catch(() => undefined);
    // Leave every host's dockerd without the trial's containers or volume.
    await A.docker(['rm', '-f', ca], { timeoutMs: 90_000 }).catch(() => undefined);
    await B.docker(['rm', '-f', cb], { timeoutMs: 90_000 }).catch(() => undefined);
    const rm = await B.docker(['volume', 'rm', volume], { timeoutMs: 90_000 }).catch((err: Error) => ({ code: -1, stderr: err.message }));
    if (rm.code !== 0) result.problems.push(`docker volume rm on ${B.name}: ${rm.stderr.trim()}`);
    await within(A.docker(['volume', 'rm', volume], { timeoutMs: 60_000 }).catch(() => undefined), 60_000);
    result.durationMs = Date.now() - started;
  }
  return result;
}

export interface TrialSummary {
  backend: string;
  trials: number;
  takeovers: number;
  medianTakeoverMs?: number;
  worstTakeoverMs?: number;
  doubleAttaches: number;
  fsckFailures: number;
  lostFiles: number;
  /** Trials with other problems (cleanup, unexpected exits). */
  problems: number;
}

export function summarize(backend: string, results: TrialResult[]): TrialSummary {
  const times = results.filter((r) => r.takeoverMs !== undefined).map((r) => r.takeoverMs as number).sort((x, y) => x - y);
  const median = times.length === 0 ? undefined : times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  return {
    backend,
    trials: results.length,
    takeovers: results.filter((r) => r.takeover).length,
    medianTakeoverMs: median,
    worstTakeoverMs: times.length === 0 ? undefined : times[times.length - 1],
    doubleAttaches: results.reduce((n, r) => n + (r.doubleAttachSamples > 0 ? 1 : 0), 0),
    fsckFailures: results.filter((r) => !r.fsckClean).length,
    lostFiles: results.reduce((n, r) => n + r.lostFiles.length, 0),
    problems: results.filter((r) => r.problems.length > 0).length,
  };
}

/** The one-line account of a trial, for logs and failure messages. */
export function describeTrial(r: TrialResult): string {
  const take = r.takeover ? `took over in ${r.takeoverMs} ms (${r.takeoverAttempts} ask${r.takeoverAttempts === 1 ? '' : 's'})` : `no takeover after ${r.takeoverAttempts} asks`;
  const parts = [
    `trial ${r.index} ${r.backend} ${r.a}->${r.b}: cut after ${r.cutDelayMs} ms, ${take}`,
    `double-attach samples ${r.doubleAttachSamples}${r.doubleAttachSeen.length ? ` (${r.doubleAttachSeen.join(', ')})` : ''}`,
    `fsck ${r.fsckClean ? 'clean' : 'NOT clean'}`,
    `synced A ${r.aSyncedBeforeCut} B ${r.bSynced}, lost ${r.lostFiles.length}${r.lostFiles.length ? ` (${r.lostFiles.slice(0, 5).join(' ')})` : ''}`,
  ];
  if (r.firstRefusal) parts.push(`first refusal: ${r.firstRefusal.slice(0, 240)}`);
  if (r.fsckOutput) parts.push(`fsck: ${r.fsckOutput.replace(/\n/g, ' | ').slice(0, 400)}`);
  if (r.problems.length) parts.push(`problems: ${r.problems.join(' | ').slice(0, 600)}`);
  return parts.join('; ');
}
