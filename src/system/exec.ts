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
  /**
   * The request's deadline: when it aborts, the child gets SIGTERM, then SIGKILL after a short
   * grace, and the call fails with TIMEOUT once the child is gone (or, for a child stuck in the
   * kernel, once a grace after SIGKILL has passed too). `timeoutMs` sends SIGKILL at once.
   */
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/**
 * One helper command seen by an observer: `start` before it runs (its argv, with registered
 * secrets redacted; stdin only by its size), `end` when run() sees it finish.
 */
export interface CommandEvent {
  phase: 'start' | 'end';
  command: string;
  args: string[];
  pid?: number;
  /** Bytes written to stdin; what they were is never reported. */
  stdinBytes?: number;
  detached?: boolean;
  exitCode?: number | null;
  signal?: string | null;
  timedOut?: boolean;
  durationMs?: number;
}

/** A helper that exited with an error: the message holds its first meaningful stderr line, `stderr` all of it (redacted). */
export class CommandFailedError extends NetvolError {
  readonly stderr: string;
  readonly exitCode: number | null;

  constructor(message: string, stderr: string, exitCode: number | null) {
    super('COMMAND_FAILED', message);
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

const DEFAULT_TIMEOUT_MS = 20_000;
/** How long a child may take to exit after SIGTERM before it gets SIGKILL, and after SIGKILL before run() stops waiting. */
export const KILL_GRACE_MS = 2000;
const MAX_LINE = 200;

const listeners = new Set<(e: CommandEvent) => void>();

/** Calls `listener` for every helper command run() and spawnDetached() start and finish; returns the unsubscribe. */
export function onCommand(listener: (e: CommandEvent) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Logs every helper command at debug: argv when it starts, exit status and duration when it ends. */
export function logCommandsTo(log: { debug(message: string, meta: Record<string, unknown>): unknown }): () => void {
  return onCommand((e) => {
    if (e.phase === 'start') {
      log.debug('helper command', { command: e.command, argv: e.args, pid: e.pid, stdinBytes: e.stdinBytes, detached: e.detached });
    } else {
      log.debug('helper command finished', { command: e.command, pid: e.pid, exitCode: e.exitCode, signal: e.signal ?? undefined, timedOut: e.timedOut, durationMs: e.durationMs });
    }
  });
}

/** For a caller that spawns a helper itself (to wire its stdio): reports its start like run() does. */
export function commandStarted(command: string, args: string[], pid: number | undefined, extra: { stdinBytes?: number; detached?: boolean } = {}): void {
  emit({ phase: 'start', command, args: args.map(redactString), pid, ...extra });
}

function emit(event: CommandEvent): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch {
      /* an observer never breaks a command */
    }
  }
}

const TERMINAL_CODES = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]/g;
/** "mke2fs 1.47.0 (5-Feb-2023)", "sshfs version 3.7.3": a tool naming itself, not the problem. */
const VERSION_BANNER = /^[\w.+-]+:? (version )?v?\d+(\.\d+)+[\w.+-]*( \(.*\))?$/i;
/** Advice printed before the error ("mount: (hint) ...", "Warning: Permanently added ..."). */
const ASIDE = /^([\w.+-]+: )?(\(hint\)|warning\b)/i;

/**
 * The line of a helper's stderr that says what went wrong: the first non-empty line that is not a
 * version banner or an aside (an aside only when nothing else is there), free of terminal codes,
 * whitespace folded, cut to one readable line. Redacted.
 */
export function firstStderrLine(stderr: string): string {
  const lines = redactString(stderr)
    .split('\n')
    .map((l) => l.replace(TERMINAL_CODES, ' ').replace(/\s+/g, ' ').trim())
    .filter((l) => l && !VERSION_BANNER.test(l));
  const line = lines.find((l) => !ASIDE.test(l)) ?? lines[0] ?? '';
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE - 1)}…` : line;
}

/**
 * Runs a program with an argv array (never through a shell). Fails with COMMAND_FAILED carrying the
 * program's first meaningful stderr line, or TIMEOUT after `timeoutMs` (SIGKILL) or when `signal`
 * aborts (SIGTERM, SIGKILL after KILL_GRACE_MS); the call settles once the child has exited, or
 * KILL_GRACE_MS after the SIGKILL if it is stuck in the kernel.
 */
export function run(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(abortedError(file, undefined, signal));
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const seen = { command: file, args: args.map(redactString), pid: child.pid };
    let stdout = '';
    let stderr = '';
    let stopped: 'timeout' | 'aborted' | undefined;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const clear = () => {
      for (const t of timers) clearTimeout(t);
      signal?.removeEventListener('abort', onAbort);
    };
    const stoppedError = () =>
      stopped === 'aborted' ? abortedError(file, child.pid, signal as AbortSignal) : new NetvolError('TIMEOUT', `${file} did not finish within ${Math.round(timeoutMs / 1000)} s`);
    // At the request's deadline SIGTERM comes first, so a helper (mount, mkfs) can undo what it half
    // did, and SIGKILL when it does not exit; a helper past its own timeout is not answering and gets
    // SIGKILL at once. If even that does not end it (a process stuck in the kernel), stop waiting.
    const giveUp = () =>
      timers.push(
        setTimeout(() => {
          if (settled) return;
          settled = true;
          clear();
          reject(stoppedError());
        }, KILL_GRACE_MS),
      );
    const terminate = (why: 'timeout' | 'aborted') => {
      if (stopped || settled) return;
      stopped = why;
      if (why === 'timeout') {
        child.kill('SIGKILL');
        giveUp();
        return;
      }
      child.kill('SIGTERM');
      timers.push(
        setTimeout(() => {
          child.kill('SIGKILL');
          giveUp();
        }, KILL_GRACE_MS),
      );
    };
    const onAbort = () => terminate('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    timers.push(setTimeout(() => terminate('timeout'), timeoutMs));
    // Reported once the abort is listened to: an observer may abort as soon as it sees the start.
    emit({ phase: 'start', ...seen, stdinBytes: opts.input === undefined ? undefined : Buffer.byteLength(opts.input) });
    const finished = (exitCode: number | null, exitSignal: string | null) =>
      emit({ phase: 'end', ...seen, exitCode, signal: exitSignal, timedOut: stopped ? true : undefined, durationMs: Math.round(Number(process.hrtime.bigint() - started) / 1e3) / 1e3 });
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    child.on('error', (err) => {
      clear();
      finished(null, null);
      if (settled) return;
      settled = true;
      reject(new NetvolError('COMMAND_FAILED', `cannot run ${file}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, exitSignal) => {
      clear();
      finished(code, exitSignal);
      if (settled) return;
      settled = true;
      if (stopped) {
        reject(stoppedError());
      } else if (code === 0) {
        resolve({ stdout, stderr });
      } else {
        const why = firstStderrLine(stderr) || (exitSignal ? `killed by ${exitSignal}` : `exit ${code}`);
        reject(new CommandFailedError(`${file} failed: ${why}`, redactString(stderr.trim()), code));
      }
    });
  });
}

/** The TIMEOUT of a helper stopped because the request it served ran out of time (the signal's reason, when it is a NetvolError, says which). */
function abortedError(file: string, pid: number | undefined, signal: AbortSignal): NetvolError {
  const reason = signal.reason instanceof NetvolError ? `: ${signal.reason.message}` : '';
  return new NetvolError('TIMEOUT', `${file}${pid === undefined ? '' : ` (pid ${pid})`} was stopped because the request ran out of time${reason}`);
}

/**
 * Starts a process in its own session, not waited for, so that it outlives netvol (the driver's
 * caretaker uses it). Returns its pid at once; its stdout and stderr go to the open file
 * descriptor `stdoutFd` when given, else nowhere.
 */
export function spawnDetached(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdoutFd?: number } = {}): number {
  const out = opts.stdoutFd ?? 'ignore';
  const child = spawn(file, args, { env: opts.env ?? process.env, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  if (child.pid === undefined) throw new NetvolError('COMMAND_FAILED', `cannot start ${file}`);
  emit({ phase: 'start', command: file, args: args.map(redactString), pid: child.pid, detached: true });
  return child.pid;
}
