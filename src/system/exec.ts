import { spawn } from 'node:child_process';
import { NetvolError, redactString } from '../errors';

export interface ExecOptions {
  /** Milliseconds before the process is killed and the call fails with TIMEOUT. */
  timeoutMs?: number;
  /** Written to the child's stdin, then closed: the way secrets reach a subprocess. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Start the child in its own session, detached from netvol, and do not wait for it. */
  detached?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 20_000;

/**
 * Runs a program with an argv array (never through a shell). Fails with COMMAND_FAILED carrying the
 * program's stderr, or TIMEOUT after `timeoutMs`.
 */
export function run(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new NetvolError('COMMAND_FAILED', `cannot run ${file}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new NetvolError('TIMEOUT', `${file} did not finish within ${Math.round(timeoutMs / 1000)} s`));
      } else if (code === 0) {
        resolve({ stdout, stderr });
      } else {
        const why = redactString(stderr.trim().split('\n').slice(-3).join('; ')) || `exit ${code ?? signal}`;
        reject(new NetvolError('COMMAND_FAILED', `${file} failed: ${why}`));
      }
    });
  });
}

/**
 * Starts a long-lived helper (sshfs, a FUSE server) in its own session so that it outlives netvol.
 * Resolves with its pid once spawned; its output goes to `logFile` when given, else nowhere.
 */
export function spawnDetached(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdoutFd?: number } = {}): number {
  const out = opts.stdoutFd ?? 'ignore';
  const child = spawn(file, args, { env: opts.env ?? process.env, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  if (child.pid === undefined) throw new NetvolError('COMMAND_FAILED', `cannot start ${file}`);
  return child.pid;
}
