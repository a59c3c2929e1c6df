/**
 * `npm start`, as the README's first command runs it, in a private copy of the package: its own
 * config (socket and state in a temporary folder, not in /run/docker/plugins), and a `tsc` on PATH
 * that only records that it ran, so "no build" is checked without timing anything. The copy has
 * this tree's dist/ (build it first) and src/; node_modules are links to this tree's.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlive, processStatus, settleWithin, sleep, waitFor } from '../harness/dockerd';
import { MAIN_JS, pluginRequest } from '../harness/netvol';

jest.setTimeout(120_000);

const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** What scripts/start.sh writes after a build that succeeded. */
const BUILD_STAMP = path.join('dist', '.netvol-built');

interface Package {
  dir: string;
  socket: string;
  config: string;
  /** One line per run of the recording tsc. */
  tscRuns(): string[];
}

function copyTree(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true, preserveTimestamps: true });
}

/** A copy of the package whose dist/ is up to date for its src/, with a recording tsc. */
function makePackage(root: string): Package {
  const dir = path.join(root, 'pkg');
  fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json', 'scripts/start.sh']) fs.copyFileSync(path.join(REPO_ROOT, f), path.join(dir, f));
  copyTree(path.join(REPO_ROOT, 'src'), path.join(dir, 'src'));
  copyTree(path.dirname(MAIN_JS), path.join(dir, 'dist'));

  // node_modules: links to this tree's, except .bin/tsc, which records its arguments and builds nothing.
  const modules = path.join(dir, 'node_modules');
  const realModules = path.join(REPO_ROOT, 'node_modules');
  fs.mkdirSync(path.join(modules, '.bin'), { recursive: true });
  for (const e of fs.readdirSync(realModules)) if (e !== '.bin') fs.symlinkSync(path.join(realModules, e), path.join(modules, e));
  const tscLog = path.join(root, 'tsc-runs.log');
  fs.writeFileSync(path.join(modules, '.bin', 'tsc'), `#!/bin/sh\necho "tsc $*" >> '${tscLog}'\n`, { mode: 0o755 });

  // Up to date: src/ a minute older than the last build.
  const past = new Date(Date.now() - 60_000);
  const age = (p: string): void => {
    fs.utimesSync(p, past, past);
    if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) age(path.join(p, e));
  };
  age(path.join(dir, 'src'));
  age(path.join(dir, 'tsconfig.json'));
  fs.writeFileSync(path.join(dir, BUILD_STAMP), '');

  const socket = path.join(root, `start-${crypto.randomBytes(4).toString('hex')}.sock`);
  const config = path.join(root, 'netvol.yaml');
  const volumes = path.join(root, 'volumes');
  fs.mkdirSync(volumes);
  fs.writeFileSync(
    config,
    `${JSON.stringify({ socket, stateDir: path.join(root, 'state'), hostId: `start-test-${path.basename(root)}`, dockerHost: '', backends: { local: { type: 'local', path: volumes } } }, null, 2)}\n`,
  );
  return {
    dir,
    socket,
    config,
    tscRuns: () => (fs.existsSync(tscLog) ? fs.readFileSync(tscLog, 'utf8').split('\n').filter(Boolean) : []),
  };
}

interface Started {
  npm: ChildProcess;
  /** The daemon's pid, found among npm's descendants. */
  daemon: number;
  output: () => string;
  exited: Promise<void>;
}

/** Children of `pid` as the kernel lists them (no scan of every process's /proc files). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8');
      out.push(...text.split(' ').filter(Boolean).map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}

function descendantRunning(pid: number, file: string): number | undefined {
  for (const c of childrenOf(pid)) {
    try {
      // Relative or absolute: the old start line ran `node dist/main.js`.
      if (fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').some((a) => a === file || file.endsWith(`/${a}`))) return c;
    } catch {
      /* gone */
    }
    const deeper = descendantRunning(c, file);
    if (deeper) return deeper;
  }
  return undefined;
}

const started: Started[] = [];

async function npmStart(p: Package): Promise<Started> {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
  for (const k of Object.keys(env)) if (k.startsWith('npm_lifecycle') || k === 'npm_package_json') delete env[k];
  const npm = spawn('npm', ['start', '--', '--config', p.config], { cwd: p.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  npm.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  npm.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => npm.on('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const s: Started = { npm, daemon: 0, output: () => out, exited };
  started.push(s);
  await waitFor(
    `the daemon started by npm start to answer on ${p.socket}`,
    async () => {
      if (gone) throw new Error(`npm start exited:\n${out}`);
      if (!fs.existsSync(p.socket)) return undefined;
      const r = await pluginRequest(p.socket, 'Plugin.Activate', undefined, { timeoutMs: 2000 });
      return r.status === 200 ? true : undefined;
    },
    30_000,
    100,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- output ---\n${out}`);
  });
  const daemon = descendantRunning(npm.pid!, path.join(p.dir, 'dist', 'main.js'));
  if (!daemon) throw new Error(`no daemon process found under npm (pid ${npm.pid})\n${out}`);
  s.daemon = daemon;
  return s;
}

/** Waits up to `ms` for `pid` to be gone; true when it is. */
async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid) && !isZombie(pid) && Date.now() < deadline) await sleep(50);
  return !isAlive(pid) || isZombie(pid);
}

function isZombie(pid: number): boolean {
  return processStatus(pid)?.state === 'Z';
}

describe('npm start (the README’s first command)', () => {
  let root: string;
  let pkg: Package;

  beforeAll(() => {
    if (!fs.existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` first`);
    root = fs.mkdtempSync('/tmp/nvstart-');
    pkg = makePackage(root);
  });

  afterEach(async () => {
    // Only what these tests started, by pid.
    for (const s of started.splice(0)) {
      for (const pid of [s.daemon, s.npm.pid]) {
        if (pid && isAlive(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      await settleWithin(s.exited, 5000);
    }
    fs.rmSync(pkg.socket, { force: true });
  });

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test('with dist/ up to date it starts the daemon without running tsc', async () => {
    const mainBefore = fs.statSync(path.join(pkg.dir, 'dist', 'main.js')).mtimeMs;
    const s = await npmStart(pkg);
    expect(pkg.tscRuns()).toEqual([]);
    expect(s.output()).not.toContain('building');
    expect(fs.statSync(path.join(pkg.dir, 'dist', 'main.js')).mtimeMs).toBe(mainBefore);
  });

  test.each(['SIGTERM', 'SIGINT'] as const)('%s to npm’s pid stops the daemon and removes its socket', async (signal) => {
    const s = await npmStart(pkg);
    expect(isAlive(s.daemon)).toBe(true);

    process.kill(s.npm.pid!, signal);

    expect(await goneWithin(s.daemon, 5000)).toBe(true);
    expect(fs.existsSync(pkg.socket)).toBe(false);
    await settleWithin(s.exited, 5000);
    expect(s.npm.exitCode !== null || s.npm.signalCode !== null).toBe(true);
    expect(s.output()).toContain('netvol stopping');
  });

  test('a file in src/ newer than the last build makes it build first', async () => {
    const touched = path.join(pkg.dir, 'src', 'main.ts');
    const now = new Date();
    fs.utimesSync(touched, now, now);
    await npmStart(pkg);
    expect(pkg.tscRuns()).toEqual(['tsc -p tsconfig.json']);
    // The build counted: the next start does not build again.
    await sleep(0);
    for (const s of started) process.kill(s.npm.pid!, 'SIGTERM');
    await Promise.all(started.map((s) => settleWithin(s.exited, 5000)));
    await npmStart(pkg);
    expect(pkg.tscRuns()).toEqual(['tsc -p tsconfig.json']);
  });
});
