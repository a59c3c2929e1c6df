import { isNetvolError, NetvolError } from '../../src/errors';
import { isAlive, KILL_GRACE_MS, onCommand, run } from '../../src/system';

/** Runs `file` under a signal aborted after `abortAfterMs`; returns the child's pid and the call's rejection. */
async function abortedRun(file: string, args: string[], abortAfterMs: number): Promise<{ pid: number; error: NetvolError; tookMs: number }> {
  let pid: number | undefined;
  const off = onCommand((e) => {
    if (e.phase === 'start' && e.command === file) pid = e.pid;
  });
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(new NetvolError('TIMEOUT', 'volume v: mount did not finish within 1 s')), abortAfterMs);
  try {
    await run(file, args, { signal: controller.signal, timeoutMs: 30_000 });
  } catch (err) {
    if (!isNetvolError(err)) throw err;
    return { pid: pid as number, error: err, tookMs: Date.now() - started };
  } finally {
    off();
  }
  throw new Error('the call succeeded');
}

describe('run() under a request deadline', () => {
  it('kills the child when the signal aborts and fails with TIMEOUT naming the program, its pid and the request', async () => {
    const { pid, error, tookMs } = await abortedRun('sleep', ['30'], 200);
    expect(pid).toBeGreaterThan(0);
    expect(isAlive(pid)).toBe(false);
    expect(error.code).toBe('TIMEOUT');
    expect(error.message).toBe(`sleep (pid ${pid}) was stopped because the request ran out of time: volume v: mount did not finish within 1 s`);
    expect(tookMs).toBeLessThan(1500);
  });

  it('sends SIGKILL to a child that ignores SIGTERM, after the grace', async () => {
    const script = "process.on('SIGTERM', () => undefined); setInterval(() => undefined, 1000);";
    const { pid, error, tookMs } = await abortedRun(process.execPath, ['-e', script], 1500); // after node has set its handler
    expect(isAlive(pid)).toBe(false);
    expect(error.code).toBe('TIMEOUT');
    expect(tookMs).toBeGreaterThanOrEqual(1500 + KILL_GRACE_MS - 50);
    expect(tookMs).toBeLessThan(1500 + 2 * KILL_GRACE_MS);
  });

  it('starts nothing when the signal has already aborted', async () => {
    const seen: string[] = [];
    const off = onCommand((e) => seen.push(e.command));
    try {
      await expect(run('true', [], { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'TIMEOUT' });
    } finally {
      off();
    }
    expect(seen).toEqual([]);
  });

  it('a signal that never aborts changes nothing', async () => {
    await expect(run('printf', ['ok'], { signal: new AbortController().signal })).resolves.toMatchObject({ stdout: 'ok' });
  });
});
