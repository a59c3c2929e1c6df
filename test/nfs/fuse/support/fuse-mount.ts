/**
 * Starts the built FUSE server (dist/fuse-nfs/main.js) against a harness ganesha, the way the nfs
 * backend starts it, and tears it down. Build first: `npm run build`.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { userspaceEnv } from '../../../../src/backends/nfs/mounters';
import type { GaneshaServer } from '../../../harness/ganesha';

export const FUSE_MAIN = path.resolve(__dirname, '..', '..', '..', '..', 'dist', 'fuse-nfs', 'main.js');
export const execFileP = promisify(execFile);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface FuseMount {
  mountpoint: string;
  /** The folder on the server's disk that the mount shows. */
  serverDir: string;
  child: ChildProcess;
  output: string[];
  unmount(): Promise<void>;
}

export function isMounted(mountpoint: string): boolean {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((l) => l.split(' ')[4] === mountpoint);
}

/**
 * Mounts folder `folder` (created on the server's disk if missing) of the ganesha export, with the
 * environment the nfs backend gives the server, plus `env`.
 */
export async function mountFolder(g: GaneshaServer, folder: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<FuseMount> {
  const serverDir = path.join(g.exportDir, folder);
  fs.mkdirSync(serverDir, { recursive: true });
  const mountpoint = fs.mkdtempSync(path.join(os.tmpdir(), 'nvfuse-'));
  const args = [
    FUSE_MAIN,
    '--server', g.host,
    '--port', String(g.nfsPort),
    '--mount-port', String(g.mountPort),
    '--export', g.exportPath,
    '--path', folder,
    '--mountpoint', mountpoint,
    ...extraArgs,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...userspaceEnv(), ...env } });
  const output: string[] = [];
  child.stdout?.setEncoding('utf8').on('data', (d: string) => output.push(...d.split('\n').filter(Boolean)));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => output.push(...d.split('\n').filter(Boolean)));
  const deadline = Date.now() + 20_000;
  while (!isMounted(mountpoint) || !output.some((l) => l.includes('"event":"mounted"'))) {
    if (child.exitCode !== null) throw new Error(`fuse-nfs exited with ${child.exitCode}:\n${output.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`fuse-nfs did not mount within 20 s:\n${output.join('\n')}`);
    await sleep(50);
  }
  return {
    mountpoint,
    serverDir,
    child,
    output,
    async unmount() {
      if (isMounted(mountpoint)) await execFileP('umount', ['-l', mountpoint]).catch(() => undefined);
      const end = Date.now() + 10_000;
      while (child.exitCode === null && child.signalCode === null && Date.now() < end) await sleep(50);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(mountpoint, { recursive: true, force: true });
    },
  };
}

/** Runs a program; resolves with its output, rejects with stderr in the message. */
export async function sh(file: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  return execFileP(file, args, { timeout: opts.timeoutMs ?? 300_000, cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 });
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(file, { highWaterMark: 1024 * 1024 })
      .on('data', (d) => hash.update(d))
      .on('end', () => resolve())
      .on('error', reject);
  });
  return hash.digest('hex');
}
