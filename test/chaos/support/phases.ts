/**
 * The chaos tier's phases, each starting the real servers it needs and cleaning up after itself,
 * each ending in one row of the same shape: the jest tier runs them short, `npm run chaos` long.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startGanesha, type GaneshaServer } from '../../harness/ganesha';
import { startNetvol, type BackendConfig, type Netvol } from '../../harness/netvol';
import { sftpOptions, startSshd, type Sshd } from '../../harness/sshd';
import { runCycles, type CycleBackend } from './cycles';
import { runFuzz } from './fuzz';

export interface PhaseResult {
  phase: string;
  cycles: number;
  faults: number;
  requests: number;
  lostVolumes: number;
  orphans: number;
  checksumMismatches: number;
  crashes: number;
  worstErrMs: number;
  /** Every problem as a sentence (lost volumes, orphans, mismatches, crashes and the rest). */
  problems: string[];
  /** Problems that are known, reported bugs, by bug (not counted above). */
  knownBugs: Record<string, number>;
  notes: string[];
  durationMs: number;
}

export const emptyResult = (phase: string): PhaseResult => ({
  phase, cycles: 0, faults: 0, requests: 0, lostVolumes: 0, orphans: 0, checksumMismatches: 0, crashes: 0, worstErrMs: 0, problems: [], knownBugs: {}, notes: [], durationMs: 0,
});

export type Progress = (line: string) => void;

/** Set by the long run's SIGINT/SIGTERM handler: phases finish their current step, tear down and report. */
export const interruption = { requested: false };
const shouldStop = (): boolean => interruption.requested;

export async function fuzzPhase(o: { requests: number; seed: number; concurrency?: number; progress?: Progress }): Promise<PhaseResult> {
  const nv = await startNetvol({ extraConfig: { timeoutSeconds: 10, logLevel: 'info' } });
  try {
    let last = 0;
    const r = await runFuzz(nv, {
      requests: o.requests,
      concurrency: o.concurrency ?? 8,
      seed: o.seed,
      deadlineMs: 60_000,
      shouldStop,
      onBatch: (done) => {
        if (o.progress && done - last >= 5000) {
          last = done;
          o.progress(`fuzz: ${done} requests`);
        }
      },
    });
    return {
      ...emptyResult('protocol fuzzing (local)'),
      requests: r.requests,
      crashes: r.crashes.length,
      orphans: r.problems.filter((p) => /orphan|holds mount|mounted \d+ times|not mounted/.test(p)).length,
      worstErrMs: r.worstErrMs,
      problems: [...r.crashes, ...r.hangs, ...r.badAnswers, ...r.problems],
      knownBugs: r.knownBugs,
      notes: [`seed ${o.seed}; answers by status ${JSON.stringify(r.answersByStatus)}; worst Err: ${r.worstErr || 'none'}`],
      durationMs: r.durationMs,
    };
  } finally {
    await nv.cleanup();
  }
}

export type KillBackend = 'local' | 'sftp' | 'nfs';
export const KILL_BACKENDS: KillBackend[] = ['local', 'sftp', 'nfs'];

interface Servers {
  backends: Record<string, BackendConfig>;
  cleanup(): Promise<void>;
}

async function serversFor(kind: KillBackend): Promise<Servers> {
  if (kind === 'sftp') {
    const sshd: Sshd = await startSshd();
    return { backends: { remote: { type: 'sftp', ...sftpOptions(sshd) } }, cleanup: () => sshd.cleanup() };
  }
  if (kind === 'nfs') {
    const g: GaneshaServer = await startGanesha();
    return {
      backends: { nas: { type: 'nfs', server: g.host, export: g.exportPath, port: g.nfsPort, mountPort: g.mountPort, path: 'volumes', mounter: 'userspace' } },
      cleanup: () => g.stop(),
    };
  }
  return { backends: {}, cleanup: async () => undefined };
}

/**
 * When a phase found problems: keeps the daemon's log (its folder goes at the clean-up) under
 * .test-work/chaos-logs, and says where in the phase's notes.
 */
function keepLog(nv: Netvol, name: string, problems: number): string[] {
  if (problems === 0) return [];
  try {
    const dir = path.join(process.cwd(), '.test-work', 'chaos-logs');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name}.log`);
    fs.copyFileSync(nv.logFile, file);
    return [`the daemon's log is kept in ${path.relative(process.cwd(), file)}`];
  } catch (err) {
    return [`the daemon's log could not be kept: ${(err as Error).message}`];
  }
}

export async function killPhase(o: { backend: KillBackend; cycles: number; seed: number; progress?: Progress }): Promise<PhaseResult> {
  const servers = await serversFor(o.backend);
  let nv: Netvol | undefined;
  try {
    nv = await startNetvol({
      ...(o.backend === 'local' ? {} : { backends: servers.backends }),
      // debug: every request is in the log, kept when the phase finds a problem (see keepLog).
      extraConfig: { timeoutSeconds: 10, logLevel: 'debug' },
    });
    const backendName = Object.keys(nv.config.backends as Record<string, unknown>)[0];
    const p = o.backend.slice(0, 1);
    const backend: CycleBackend = {
      name: backendName,
      names: [
        { name: `k9${p}-d0`, opts: null },
        { name: `k9${p}-d1`, opts: null },
        { name: `k9${p}-d2`, opts: { onRemove: 'delete' } },
        { name: `k9${p}-i0`, opts: { size: '16M' } },
        { name: `k9${p}-i1`, opts: { size: '16M' } },
      ],
    };
    const r = await runCycles(nv, {
      cycles: o.cycles,
      seed: o.seed,
      backends: [backend],
      shouldStop,
      onCycle: (c, rep) => {
        if (o.progress && (c + 1) % 25 === 0) o.progress(`kill -9 ${o.backend}: ${c + 1} cycles, ${rep.requests} requests`);
      },
    });
    return {
      ...emptyResult(`kill -9 cycles (${o.backend})`),
      cycles: r.cycles,
      faults: r.kills,
      requests: r.requests,
      lostVolumes: r.lostVolumes.length,
      orphans: r.orphans.length,
      checksumMismatches: r.checksumMismatches.length,
      crashes: r.cycles < o.cycles && !interruption.requested ? 1 : 0,
      worstErrMs: r.worstErrMs,
      problems: [...r.lostVolumes, ...r.orphans, ...r.checksumMismatches, ...r.problems],
      notes: [
        `seed ${o.seed}; ${r.undecided} requests cut off by the kill; ${r.filesChecked} file checksums verified; ${r.unmountTimeouts} Unmounts answered with a time-limit Err (the ID given up, as dockerd does); worst Err: ${r.worstErr || 'none'}`,
        ...keepLog(nv, `kill9-${o.backend}-${o.seed}`, r.lostVolumes.length + r.orphans.length + r.checksumMismatches.length + r.problems.length),
      ],
      durationMs: r.durationMs,
    };
  } finally {
    await nv?.cleanup();
    await servers.cleanup();
  }
}
