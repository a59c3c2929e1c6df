/**
 * The sweep's machinery: a case is a few steps (operation, user, arguments, paths to look at
 * afterwards); a group of cases runs in one child process (support/steps.py) on a local folder and
 * on the mount, one after the other, and every step's outcome on the mount is compared with the
 * same step's outcome on the local folder. Nothing here knows what the right answer is: the local
 * disk says it at run time.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import Table from 'cli-table3';
import { Limit } from '../limits';

export type UserName = 'root' | 'owner' | 'member' | 'other';

/** Who runs a step. `member` shares the owner's group; `other` shares nothing; the owner also belongs to SECOND_GID. */
export const OWNER = 51001;
export const MEMBER = 51003;
export const OTHER = 51002;
export const SECOND_GID = 51004;
export const USERS: Record<UserName, { uid: number; gid: number; groups: number[] }> = {
  root: { uid: 0, gid: 0, groups: [] },
  owner: { uid: OWNER, gid: OWNER, groups: [OWNER, SECOND_GID] },
  member: { uid: MEMBER, gid: MEMBER, groups: [MEMBER, OWNER] },
  other: { uid: OTHER, gid: OTHER, groups: [OTHER] },
};
export const uidOf = (u: UserName): number => USERS[u].uid;

export interface Step {
  user: UserName;
  op: string;
  args?: Record<string, unknown>;
  /** Paths (relative to the tree) described as root after the step. */
  observe?: string[];
  /** A step that sets times on purpose: report access times too, and exact values rather than classes. */
  atime?: boolean;
}

export interface Case {
  /** What the case does, as printed in a mismatch table. */
  op: string;
  user: UserName;
  type: string;
  /** Root's steps that make the case's files; their outcomes are compared as well. */
  setup: Step[];
  steps: Step[];
}

/** Every fixture's atime and mtime (2001-09-09): a step that updates a time shows up as "now". */
export const OLD_TIME: [number, number] = [1_000_000_000, 0];

export type FileType = 'reg' | 'dir' | 'symlink' | 'fifo' | 'sock' | 'chr' | 'blk';
export const TYPES: FileType[] = ['reg', 'dir', 'symlink', 'fifo', 'sock', 'chr', 'blk'];

export interface FixtureOptions {
  mode?: number;
  owner?: UserName;
  group?: number;
  /** Content of a regular file. */
  content?: string;
  /** Target of a symlink. */
  target?: string;
}

/** Root's steps that make a file of a type, give it to its owner, set its mode and old times. */
export function make(p: string, type: FileType, o: FixtureOptions = {}): Step[] {
  const owner = o.owner ?? 'root';
  const uid = uidOf(owner);
  const gid = o.group ?? USERS[owner].gid;
  const mode = o.mode ?? (type === 'dir' ? 0o755 : 0o644);
  const steps: Step[] = [];
  const root = (op: string, args: Record<string, unknown>): void => void steps.push({ user: 'root', op, args });
  switch (type) {
    case 'reg':
      root('open', { path: p, flags: ['O_WRONLY', 'O_CREAT', 'O_EXCL'], mode, write: o.content ?? 'hello' });
      break;
    case 'dir':
      root('mkdir', { path: p, mode });
      break;
    case 'symlink':
      root('symlink', { path: p, target: o.target ?? 'nowhere' });
      break;
    case 'fifo':
      root('mkfifo', { path: p, mode });
      break;
    case 'sock':
      root('bind', { path: p });
      break;
    case 'chr':
      root('mknod', { path: p, type: 'chr', mode, major: 1, minor: 3 });
      break;
    case 'blk':
      root('mknod', { path: p, type: 'blk', mode, major: 7, minor: 200 });
      break;
  }
  if (uid !== 0 || gid !== 0) root('chown', { path: p, uid, gid, follow: false });
  if (type !== 'symlink') {
    root('chmod', { path: p, mode });
    // A symlink's own times are not set here: whether that works is a case of its own.
    root('utimens', { path: p, atime: OLD_TIME, mtime: OLD_TIME, follow: false });
  }
  return steps;
}

/** Sets a folder's times back after its entries were made (making them changed its mtime). */
export function settle(p: string): Step {
  return { user: 'root', op: 'utimens', args: { path: p, atime: OLD_TIME, mtime: OLD_TIME, follow: false } };
}

// ---------------------------------------------------------------------------------------------
// running

interface RawResult {
  r: string;
  v?: unknown;
  /** Nanoseconds (as text) just before and just after the step. */
  t: [string, string];
  /** atime, mtime, ctime (ns as text) and inode of each observed path before the step. */
  before?: Record<string, [string, string, string, number] | null>;
  obs?: Record<string, string | Record<string, unknown>>;
}

const STEPS_PY = path.join(__dirname, 'steps.py');

function runSteps(trees: string[], steps: Step[]): Promise<RawResult[][]> {
  return new Promise((resolve, reject) => {
    const child = execFile('python3', [STEPS_PY], { maxBuffer: 256 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`steps.py failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as RawResult[][]);
    });
    child.stdin?.end(JSON.stringify({ trees, users: USERS, umask: 0o022, steps }));
  });
}

/** A step's outcome as named fields, e.g. `r` → `ok`, `new.mode` → `0644`, `new.mtime` → `now`. */
export type Outcome = Map<string, string>;

/** Separates a path from a field in an outcome's keys (paths may hold dots). */
export const FIELD = '\t';

/** Times this close before a step count as "now" (file times may come from a coarse clock, a tick behind). */
const NOW_SLACK_NS = 20_000_000n;
const OLD_NS = BigInt(OLD_TIME[0]) * 1_000_000_000n;
/** Between the setup and the steps of a group, so that no fixture's ctime looks like "now". */
const SETTLE_MS = 200;

/**
 * A time as a class both trees can agree on: "old" (the fixtures' time), "same" as before the
 * step (same file, same time), "now", then in a step that sets times on purpose (utimensat) the exact value, elsewhere
 * "earlier" or "later" than the step.
 */
function timeClass(afterText: string, beforeText: string | undefined, t: [string, string], exact: boolean): string {
  const after = BigInt(afterText);
  if (beforeText !== undefined && afterText === beforeText) return after === OLD_NS ? 'old' : 'same';
  if (after >= BigInt(t[0]) - NOW_SLACK_NS && after <= BigInt(t[1]) + NOW_SLACK_NS) return 'now';
  if (exact) {
    const ns = after % 1_000_000_000n;
    const fraction = ns < 0n ? ns + 1_000_000_000n : ns;
    return `${(after - fraction) / 1_000_000_000n}.${String(fraction).padStart(9, '0')}`;
  }
  if (after === OLD_NS) return 'old';
  return after < BigInt(t[0]) ? 'earlier' : 'later';
}

/** Turns raw results into outcomes; inode numbers become i0, i1… in order of first sight within a case. */
function outcome(step: Step, res: RawResult, inodes: Map<number, string>): Outcome {
  const o: Outcome = new Map([['r', res.r]]);
  if (res.v !== undefined) o.set('value', JSON.stringify(res.v));
  for (const p of step.observe ?? []) {
    const d = res.obs?.[p];
    const name = shortName(p);
    if (d === undefined || typeof d === 'string') {
      o.set(name, d ?? 'missing');
      continue;
    }
    // Times before the step count only if the path still names the same file.
    const b = res.before?.[p];
    const before = b && b[3] === d.ino ? b : undefined;
    for (const [k, v] of Object.entries(d)) {
      if (k === 'ino') {
        const ino = v as number;
        if (!inodes.has(ino)) inodes.set(ino, `i${inodes.size}`);
        o.set(`${name}${FIELD}ino`, inodes.get(ino)!);
      } else if (k === 'atime' || k === 'mtime' || k === 'ctime') {
        if (k === 'atime' && !step.atime) continue;
        const idx = k === 'atime' ? 0 : k === 'mtime' ? 1 : 2;
        o.set(`${name}${FIELD}${k}`, timeClass(v as string, before?.[idx] as string | undefined, res.t, step.atime === true));
      } else {
        o.set(`${name}${FIELD}${k}`, typeof v === 'string' ? v : JSON.stringify(v));
      }
    }
  }
  return o;
}

/** Long names (up to 255 bytes) are printed as their first characters and length. */
export function shortName(p: string): string {
  return p
    .split('/')
    .map((c) => (c.length > 24 ? `${c.slice(0, 6)}…(${c.length})` : c))
    .join('/')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t');
}

export interface Row {
  op: string;
  user: UserName;
  type: string;
  step: string;
  local: Outcome;
  mount: Outcome;
  limit?: Limit;
}

export interface GroupResult {
  cases: number;
  steps: number;
  /** Steps whose outcomes differ and no documented limit covers. */
  mismatches: Row[];
  /** Steps whose outcomes differ in a way a documented NFSv3 limit allows. */
  limited: Row[];
}

function stepLabel(s: Step): string {
  const a = s.args ?? {};
  const p = (a.path ?? a.src ?? a.fd ?? '') as string;
  const extra = a.dst !== undefined ? `→${a.dst as string}` : '';
  return `${s.op} ${shortName(p + extra)}`.trim();
}

/** Runs the cases in both folders, compares every step, and sorts differences into mismatches and documented limits. */
export async function runGroup(local: string, mount: string, cases: Case[], limits: Limit[]): Promise<GroupResult> {
  const steps: Step[] = [];
  const owners: { c: Case; setup: boolean }[] = [];
  for (const c of cases) for (const s of c.setup) (steps.push(s), owners.push({ c, setup: true }));
  const settleStep: Step = { user: 'root', op: 'sleep', args: { ms: SETTLE_MS } };
  steps.push(settleStep);
  owners.push({ c: cases[0], setup: true });
  for (const c of cases) for (const s of c.steps) (steps.push(s), owners.push({ c, setup: false }));
  const [onLocal, onMount] = await runSteps([local, mount], steps);
  // A step the runner could not even express is a bug in the sweep, not an answer of the disk.
  const broken = steps.flatMap((s, i) => (onLocal[i].r.startsWith('EXCEPTION') ? [`${stepLabel(s)}: ${onLocal[i].r}`] : []));
  if (broken.length) throw new Error(`steps.py could not run ${broken.length} step(s):\n${broken.slice(0, 10).join('\n')}`);
  const inodes = new Map<Case, [Map<number, string>, Map<number, string>]>();
  const result: GroupResult = { cases: cases.length, steps: steps.length, mismatches: [], limited: [] };
  steps.forEach((s, i) => {
    const { c, setup } = owners[i];
    if (!inodes.has(c)) inodes.set(c, [new Map(), new Map()]);
    const [li, mi] = inodes.get(c)!;
    const l = outcome(s, onLocal[i], li);
    const m = outcome(s, onMount[i], mi);
    if (same(l, m)) return;
    const row: Row = { op: c.op, user: c.user, type: c.type, step: (setup ? 'setup: ' : '') + stepLabel(s), local: l, mount: m };
    const limit = limits.find((x) => x.applies(s) && x.mountMay(m, l, s));
    if (limit) result.limited.push({ ...row, limit });
    else result.mismatches.push(row);
  });
  return result;
}

function same(a: Outcome, b: Outcome): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/**
 * The result code, then one line per observed path with only the fields that differ from the
 * other side (a path that is an errno on one side is shown as that errno).
 */
function describe(o: Outcome, other: Outcome): string {
  const lines = [`r=${o.get('r')}`];
  const perPath = new Map<string, string[]>();
  for (const [k, v] of o) {
    if (k === 'r' || other.get(k) === v) continue;
    const [p, field] = k.split(FIELD);
    if (field === undefined) {
      lines.push(`${p}=${clip(v, other.get(k))}`);
      continue;
    }
    if (other.has(p) && !other.has(k)) continue; // the other side shows that path as an errno
    perPath.set(p, [...(perPath.get(p) ?? []), `${field}=${clip(v, other.get(k))}`]);
  }
  for (const [p, fields] of perPath) lines.push(`${p}: ${fields.join(' ')}`);
  return lines.join('\n');
}

/** A long value shown by what differs: a list's entries missing on the other side, or text around the first difference. */
function clip(v: string, other: string | undefined): string {
  if (v.length <= 60) return v;
  if (v.startsWith('[') && other?.startsWith('[')) {
    const theirs = new Set(JSON.parse(other) as unknown[]);
    return `[only here: ${JSON.stringify((JSON.parse(v) as unknown[]).filter((x) => !theirs.has(x))).slice(1)}`;
  }
  let i = 0;
  while (other !== undefined && i < v.length && v[i] === other[i]) i++;
  const from = Math.max(0, i - 20);
  return `${from > 0 ? '...' : ''}${v.slice(from, from + 50)}${from + 50 < v.length ? '...' : ''}`;
}

/** A compact table of differing steps: op, user, type, step, local outcome, mount outcome. */
export function table(rows: Row[], max = 40): string {
  const t = new Table({ head: ['op', 'user', 'type', 'step', 'local disk', 'mount'], style: { head: [], border: [] } });
  for (const r of rows.slice(0, max)) t.push([r.op, r.user, r.type, r.step, describe(r.local, r.mount), describe(r.mount, r.local)]);
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.op, (counts.get(r.op) ?? 0) + 1);
  const byOp = [...counts].map(([op, n]) => `  ${n} × ${op}`).join('\n');
  const more = rows.length > max ? `\n… and ${rows.length - max} more rows` : '';
  return `${rows.length} step(s) differ between the local disk and the mount:\n${byOp}\n${t.toString()}${more}`;
}
