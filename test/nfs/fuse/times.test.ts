/**
 * Timestamps through the userspace mount, each case compared with the same call on a local folder:
 * every mix of explicit times, UTIME_NOW and UTIME_OMIT on every file type, ctime after changes,
 * and the errors for what NFSv3 cannot store (seconds beyond 32 bits; a server that ignores a
 * symlink's own times).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sh, sleep } from './support/fuse-mount';

let g: GaneshaServer;
let m: FuseMount;
let local: string;
let tool: string;
let python: string;

/**
 * utimensat(2) with UTIME_NOW / UTIME_OMIT per field, which Node cannot call. Arguments come in
 * fours (path, atime, mtime, nofollow|follow); prints one line per call: OK or the errno name.
 */
const UTIMENSAT = `
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
class T(ctypes.Structure):
    _fields_ = [('s', ctypes.c_long), ('ns', ctypes.c_long)]
def spec(x):
    if x == 'now': return T(0, (1 << 30) - 1)
    if x == 'omit': return T(0, (1 << 30) - 2)
    s, ns = x.split('.')
    return T(int(s), int(ns))
args = sys.argv[1:]
for i in range(0, len(args), 4):
    path, atime, mtime, follow = args[i:i + 4]
    times = (T * 2)(spec(atime), spec(mtime))
    flags = 0x100 if follow == 'nofollow' else 0
    if libc.utimensat(-100, path.encode(), times, flags) != 0:
        print(errno.errorcode[ctypes.get_errno()])
    else:
        print('OK')
`;

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'vol');
  local = fs.mkdtempSync(path.join(os.tmpdir(), 'nvtimes-'));
  tool = path.join(local, 'utimensat.py');
  fs.writeFileSync(tool, UTIMENSAT);
  // The interpreter itself, not a version manager's shim (which costs a second a call).
  python = (await sh('python3', ['-c', 'import sys; print(sys.executable)'])).stdout.trim();
});

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
  if (local) fs.rmSync(local, { recursive: true, force: true });
});

type Call = { file: string; atime: string; mtime: string; nofollow?: boolean };

/** Several utimensat calls in one process (one interpreter start instead of one per call). */
async function utimensatAll(calls: Call[]): Promise<string[]> {
  const { stdout } = await sh(python, [tool, ...calls.flatMap((c) => [c.file, c.atime, c.mtime, c.nofollow ? 'nofollow' : 'follow'])]);
  return stdout.trim().split('\n');
}

async function utimensat(file: string, atime: string, mtime: string, nofollow = false): Promise<string> {
  return (await utimensatAll([{ file, atime, mtime, nofollow }]))[0];
}

type Kind = 'file' | 'folder' | 'fifo' | 'symlink';
let made = 0;
async function makeAll(dir: string, kind: Kind, count: number): Promise<string[]> {
  const paths = Array.from({ length: count }, () => path.join(dir, `${kind}${made++}`));
  if (kind === 'fifo') await sh('mkfifo', paths);
  for (const p of paths) {
    if (kind === 'file') fs.writeFileSync(p, 'x');
    else if (kind === 'folder') fs.mkdirSync(p);
    else if (kind === 'symlink') fs.symlinkSync('somewhere', p);
  }
  return paths;
}

async function make(dir: string, kind: Kind): Promise<string> {
  return (await makeAll(dir, kind, 1))[0];
}

const ns = (t: bigint) => t;
const BASE = '1000000000.250000000';
const EXPLICIT = { atime: '1234567890.123456789', mtime: '1300000000.987654321' };
const asNs = (spec: string) => BigInt(spec.split('.')[0]) * 1_000_000_000n + BigInt(spec.split('.')[1]);

/** What happened to one time: set to the explicit value, to about now, or left as it was. */
function judge(value: bigint, requested: string, before: bigint, callStart: bigint, callEnd: bigint): string {
  if (requested !== 'now' && requested !== 'omit' && value === asNs(requested)) return 'explicit';
  if (value === before) return 'unchanged';
  if (value >= callStart - 2_000_000_000n && value <= callEnd + 2_000_000_000n) return 'now';
  return `other ${value}`;
}

/**
 * Every mix in `combos`, each on a fresh node of `kind` in `dir` whose times were first set to
 * BASE, described so the two sides can be compared ("<atime>/<mtime>: what happened").
 */
async function utimeCases(dir: string, kind: Kind, combos: string[][]): Promise<string[]> {
  const paths = await makeAll(dir, kind, combos.length);
  const nofollow = kind === 'symlink';
  const setBase = await utimensatAll(paths.map((file) => ({ file, atime: BASE, mtime: BASE, nofollow })));
  const before = paths.map((p) => fs.lstatSync(p, { bigint: true }));
  await sleep(20);
  const value = (spec: string, field: 'atime' | 'mtime') => (spec === 'explicit' ? EXPLICIT[field] : spec);
  const start = BigInt(Date.now()) * 1_000_000n;
  const results = await utimensatAll(combos.map(([a, b], i) => ({ file: paths[i], atime: value(a, 'atime'), mtime: value(b, 'mtime'), nofollow })));
  const end = BigInt(Date.now()) * 1_000_000n;
  return combos.map(([a, b], i) => {
    const label = `${a}/${b}`;
    if (results[i] !== 'OK') return `${label}: ${setBase[i]} then ${results[i]}`;
    const after = fs.lstatSync(paths[i], { bigint: true });
    return `${label}: ${[
      `atime ${judge(after.atimeNs, value(a, 'atime'), ns(before[i].atimeNs), start, end)}`,
      `mtime ${judge(after.mtimeNs, value(b, 'mtime'), ns(before[i].mtimeNs), start, end)}`,
      `ctime ${after.ctimeNs > before[i].ctimeNs ? 'changed' : 'same'}`,
    ].join(', ')}`;
  });
}

const SPECS = ['explicit', 'now', 'omit'];
const COMBOS = SPECS.flatMap((a) => SPECS.map((b) => [a, b])).filter(([a, b]) => !(a === 'omit' && b === 'omit'));

for (const kind of ['file', 'folder', 'fifo'] as const) {
  test(`every mix of explicit, UTIME_NOW and UTIME_OMIT on a ${kind} ends as on a local disk`, async () => {
    const want = await utimeCases(local, kind, COMBOS);
    const got = await utimeCases(m.mountpoint, kind, COMBOS);
    expect(got).toEqual(want);
  });
}

test('times of a symlink itself are applied, or refused as unsupported, never answered 0 and ignored', async () => {
  const want = await utimeCases(local, 'symlink', COMBOS);
  const got = await utimeCases(m.mountpoint, 'symlink', COMBOS);
  const results = got.map((g, i) => (g === want[i] ? `${COMBOS[i].join('/')}: as on a local disk` : g));
  // EOPNOTSUPP is ENOTSUP on Linux (Python names it so).
  expect(results.filter((r) => !/: (as on a local disk|.*(EOPNOTSUPP|ENOTSUP))$/.test(r))).toEqual([]);
});

test('a time NFSv3 cannot store (seconds from 2^32 on, or before 1970) fails with EOVERFLOW, and the largest one it can works', async () => {
  const p = await make(m.mountpoint, 'file');
  expect(await utimensat(p, `${2 ** 32}.0`, 'omit')).toBe('EOVERFLOW');
  expect(await utimensat(p, 'omit', `${2 ** 32 + 5}.0`)).toBe('EOVERFLOW');
  expect(await utimensat(p, '-1.0', 'omit')).toBe('EOVERFLOW');
  expect(await utimensat(p, `${2 ** 32 - 1}.5`, `${2 ** 32 - 1}.5`)).toBe('OK');
  expect(fs.statSync(p, { bigint: true }).mtimeNs).toBe(BigInt(2 ** 32 - 1) * 1_000_000_000n + 5n);
  expect(m.output.join('\n')).not.toMatch(/uint32 out of range/);
});

const CHANGES: Record<string, (p: string, dir: string) => unknown> = {
  chmod: (p) => fs.chmodSync(p, 0o600),
  chown: (p) => fs.chownSync(p, 123, 456),
  write: (p) => fs.appendFileSync(p, 'more'),
  truncate: (p) => fs.truncateSync(p, 0),
  link: (p, dir) => fs.linkSync(p, path.join(dir, `${path.basename(p)}.link`)),
  rename: (p, dir) => fs.renameSync(p, path.join(dir, `${path.basename(p)}.moved`)),
  read: (p) => fs.readFileSync(p),
};

test('ctime changes with every change of a file, and not with a read, as on a local disk', async () => {
  const want: string[] = [];
  const got: string[] = [];
  for (const [name, change] of Object.entries(CHANGES)) {
    for (const [dir, out] of [[local, want], [m.mountpoint, got]] as const) {
      const p = await make(dir, 'file');
      const before = fs.statSync(p, { bigint: true }).ctimeNs;
      await sleep(20);
      change(p, dir);
      const now = name === 'rename' ? path.join(dir, `${path.basename(p)}.moved`) : p;
      out.push(`${name}: ctime ${fs.statSync(now, { bigint: true }).ctimeNs > before ? 'changed' : 'same'}`);
    }
  }
  expect(got).toEqual(want);
});

test('times set on an open file right after writing it stay set (as tar extracts: write, futimens, close)', () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 123, 0x5a);
  const past = new Date('2020-01-02T03:04:05Z');
  const got: string[] = [];
  for (let i = 0; i < 8; i++) {
    const p = path.join(m.mountpoint, `extracted-${i}`);
    const fd = fs.openSync(p, 'w');
    fs.writeSync(fd, data);
    fs.futimesSync(fd, past, past);
    fs.closeSync(fd);
    const st = fs.statSync(p);
    got.push(`${i}: mtime ${st.mtime.toISOString()}, size ${st.size}`);
  }
  expect(got).toEqual(Array.from({ length: 8 }, (_, i) => `${i}: mtime ${past.toISOString()}, size ${data.length}`));
});
