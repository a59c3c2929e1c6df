/**
 * Protocol fuzzing over the real socket of a real daemon: batches of generated requests, sent by
 * several workers at once (each worker's requests in order, as one container's are), then the
 * invariants checked while nothing is in flight. Batches are generated from `seed + batch number`,
 * so any batch can be replayed alone.
 */
import fc from 'fast-check';
import { isAlive } from '../../../src/system';
import { pluginRequest, type Netvol, type PluginResponse } from '../../harness/netvol';
import { answerProblem, backendProblems, knownBug, countProblems, orphanProblems, stateProblems, type DaemonFolders, type ListedVolume } from './checks';
import { MountModel } from './model';
import { fuzzRequest, isRaw, type FuzzRequest } from './requests';

export interface FuzzOptions {
  requests: number;
  /** Workers sending at once. */
  concurrency: number;
  /** Requests per worker per batch; the invariants are checked between batches. */
  perWorker?: number;
  seed: number;
  /** How long a request may take before it counts as a hang (dockerd gives a plugin 60 s). */
  deadlineMs: number;
  onBatch?: (done: number, report: FuzzReport) => void;
  /** Checked between batches: true ends the run early (the tear-down still runs). */
  shouldStop?: () => boolean;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  /** Answers that were not a JSON object with a readable Err or a result. */
  badAnswers: string[];
  /** Requests not answered within the deadline. */
  hangs: string[];
  /** Times the daemon died (it is restarted and the run goes on). */
  crashes: string[];
  /** Problems that are a known, reported bug (see knownBug()), by bug. */
  knownBugs: Record<string, number>;
  /** Invariant violations found between batches and after the final clean-up. */
  problems: string[];
  worstErrMs: number;
  worstErr: string;
  answersByStatus: Record<number, number>;
  /** Successful answers per route: proof the run did reach the volumes, not only the validators. */
  succeeded: Record<string, number>;
  durationMs: number;
}

const VALID_ID = /^[A-Za-z0-9_.-]{1,128}$/;

/** Gives a well-formed mount ID the worker's own mark, so no two workers share an ID (containers don't). */
function ownIds(body: unknown, worker: number): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body) || isRaw(body)) return body;
  const b = body as Record<string, unknown>;
  if (typeof b.ID !== 'string' || !VALID_ID.test(b.ID)) return body;
  return { ...b, ID: `w${worker}-${b.ID}`.slice(0, 128) };
}

function payloadOf(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  if (isRaw(body)) return body.raw;
  return JSON.stringify(body);
}

export function foldersOf(nv: Netvol): DaemonFolders {
  return {
    root: nv.root,
    mountRoot: String(nv.config.mountRoot ?? `${nv.stateDir}/mounts`),
    stateFile: `${nv.stateDir}/state.json`,
    localBackends: Object.fromEntries(
      Object.entries(nv.config.backends as Record<string, { type: string; path?: string }>)
        .filter(([, b]) => b.type === 'local' && b.path)
        .map(([n, b]) => [n, b.path as string]),
    ),
    daemonPid: nv.pid,
  };
}

/** Every invariant that must hold while nothing is in flight. */
export async function quietChecks(nv: Netvol, model: MountModel): Promise<string[]> {
  const list = await pluginRequest(nv.socket, 'VolumeDriver.List', {}, { timeoutMs: 60_000 });
  if (list.status !== 200 || !Array.isArray(list.json?.Volumes)) return [`List failed: ${list.raw.slice(0, 300)}`];
  const f = foldersOf(nv);
  const listed = list.json.Volumes as ListedVolume[];
  return [...countProblems(listed, model), ...orphanProblems(f, model), ...stateProblems(f, model), ...backendProblems(f, listed)];
}

/** Unmounts what the model holds and removes every volume List shows: the end of a run. */
export async function tearDown(nv: Netvol, model: MountModel): Promise<string[]> {
  const out: string[] = [];
  for (const { name, id, count } of model.held()) {
    for (let i = 0; i < count; i++) {
      const r = await pluginRequest(nv.socket, 'VolumeDriver.Unmount', { Name: name, ID: id }, { timeoutMs: 60_000 });
      if (r.status !== 200 || r.json?.Err) out.push(`tear-down: Unmount ${name} ${id} failed: ${r.raw.slice(0, 300)}`);
      else model.unmounted(name, id);
    }
  }
  const list = await pluginRequest(nv.socket, 'VolumeDriver.List', {}, { timeoutMs: 60_000 });
  for (const v of (list.json?.Volumes ?? []) as ListedVolume[]) {
    const r = await pluginRequest(nv.socket, 'VolumeDriver.Remove', { Name: v.Name }, { timeoutMs: 60_000 });
    if (r.status !== 200 || r.json?.Err) out.push(`tear-down: Remove ${v.Name} failed: ${r.raw.slice(0, 300)}`);
  }
  return [...out, ...(await quietChecks(nv, model))];
}

interface Sent {
  response?: PluginResponse;
  error?: Error;
  ms: number;
}

async function send(nv: Netvol, req: FuzzRequest, body: unknown, deadlineMs: number): Promise<Sent> {
  const started = Date.now();
  try {
    const response = await pluginRequest(nv.socket, req.route, payloadOf(body), { headers: req.headers, timeoutMs: deadlineMs });
    return { response, ms: Date.now() - started };
  } catch (error) {
    return { error: error as Error, ms: Date.now() - started };
  }
}

function describe(req: FuzzRequest, body: unknown): string {
  const p = payloadOf(body) ?? '';
  return `POST /${req.route} ${p.length > 160 ? `${p.slice(0, 160)}… (${p.length} bytes)` : p}`;
}

export async function runFuzz(nv: Netvol, opts: FuzzOptions, model = new MountModel()): Promise<FuzzReport> {
  const perWorker = opts.perWorker ?? 25;
  const report: FuzzReport = {
    seed: opts.seed, requests: 0, badAnswers: [], hangs: [], crashes: [], problems: [], knownBugs: {}, worstErrMs: 0, worstErr: '', answersByStatus: {}, succeeded: {}, durationMs: 0,
  };
  const started = Date.now();
  const batchSize = opts.concurrency * perWorker;
  for (let batch = 0; report.requests < opts.requests && !opts.shouldStop?.(); batch++) {
    const left = opts.requests - report.requests;
    const workers = Math.min(opts.concurrency, Math.ceil(left / perWorker));
    const [streams] = fc.sample(fc.array(fc.array(fuzzRequest, { minLength: perWorker, maxLength: perWorker }), { minLength: workers, maxLength: workers }), {
      numRuns: 1,
      seed: opts.seed + batch,
    });
    let budget = Math.min(left, batchSize);
    let died = false;
    await Promise.all(
      streams.map(async (stream, w) => {
        for (const req of stream) {
          if (budget <= 0 || died) return;
          budget--;
          const body = ownIds(req.body, w);
          const sent = await send(nv, req, body, opts.deadlineMs);
          report.requests++;
          const what = `batch ${batch} (seed ${opts.seed + batch}): ${describe(req, body)}`;
          if (sent.error) {
            if (/timed out/.test(sent.error.message)) report.hangs.push(`${what}: no answer within ${opts.deadlineMs} ms`);
            else if (!nv.pid || !isAlive(nv.pid)) died = true;
            else report.badAnswers.push(`${what}: ${sent.error.message}`);
            continue;
          }
          const r = sent.response!;
          report.answersByStatus[r.status] = (report.answersByStatus[r.status] ?? 0) + 1;
          const problem = answerProblem(req.route, r);
          if (problem) {
            const bug = knownBug(body, problem);
            if (bug) report.knownBugs[bug] = (report.knownBugs[bug] ?? 0) + 1;
            else report.badAnswers.push(`${what}: ${problem}`);
          }
          const err = typeof r.json?.Err === 'string' ? (r.json.Err as string) : '';
          if (err && sent.ms > report.worstErrMs) {
            report.worstErrMs = sent.ms;
            report.worstErr = `${req.route}: ${err.slice(0, 200)}`;
          }
          const ok = r.status === 200 && !err;
          if (ok) report.succeeded[req.route] = (report.succeeded[req.route] ?? 0) + 1;
          const b = body as Record<string, unknown> | undefined;
          if (ok && b && typeof b.Name === 'string' && typeof b.ID === 'string') {
            // Routes match without regard to case (express's default), so the model's do too.
            const route = req.route.toLowerCase();
            if (route === 'volumedriver.mount') model.mounted(b.Name, b.ID);
            if (route === 'volumedriver.unmount') model.unmounted(b.Name, b.ID);
          }
        }
      }),
    );
    if (died || !nv.pid || !isAlive(nv.pid)) {
      report.crashes.push(`batch ${batch} (seed ${opts.seed + batch}): the daemon died\n${nv.logTail(30)}`);
      await nv.restart();
    }
    for (const p of await quietChecks(nv, model)) report.problems.push(`after batch ${batch} (seed ${opts.seed + batch}): ${p}`);
    // Every fourth batch the containers go away, so Remove and Create get their turn on the same names.
    if (batch % 4 === 3) {
      for (const { name, id, count } of model.held()) {
        for (let i = 0; i < count; i++) {
          const r = await pluginRequest(nv.socket, 'VolumeDriver.Unmount', { Name: name, ID: id }, { timeoutMs: opts.deadlineMs });
          report.requests++;
          if (r.status === 200 && !r.json?.Err) model.unmounted(name, id);
          else report.problems.push(`batch ${batch}: Unmount ${name} ${id} of an acknowledged mount failed: ${r.raw.slice(0, 300)}`);
        }
      }
    }
    report.durationMs = Date.now() - started;
    opts.onBatch?.(report.requests, report);
  }
  for (const p of await tearDown(nv, model)) report.problems.push(`after the run: ${p}`);
  report.durationMs = Date.now() - started;
  return report;
}
