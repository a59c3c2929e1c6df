import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isNetvolError, NetvolError, registerSecret } from '../../src/errors';
import { run, withTimeout } from '../../src/system';

async function failure(work: Promise<unknown>): Promise<NetvolError> {
  try {
    await work;
  } catch (err) {
    if (isNetvolError(err)) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('exec wrapper run()', () => {
  it('passes argv as-is, never through a shell', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-exec-'));
    const marker = path.join(dir, 'pwned');
    try {
      const arg = `$(touch ${marker}); \`touch ${marker}\` && touch ${marker} * | >x`;
      const { stdout } = await run('printf', ['%s', arg]);
      expect(stdout).toBe(arg);
      await expect(fs.stat(marker)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('writes input to stdin and closes it', async () => {
    const { stdout } = await run('cat', [], { input: 'line one\nline two\n' });
    expect(stdout).toBe('line one\nline two\n');
  });

  it('gives the child an empty, closed stdin when there is no input', async () => {
    const { stdout } = await run('cat', [], { timeoutMs: 5000 });
    expect(stdout).toBe('');
  });

  it('kills a child that outlives its timeout and fails with TIMEOUT', async () => {
    const started = Date.now();
    const err = await failure(run('sleep', ['30'], { timeoutMs: 300 }));
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('sleep did not finish within');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('puts the first line of stderr in the COMMAND_FAILED error', async () => {
    const err = await failure(run('ls', ['/definitely/not/here']));
    expect(err.code).toBe('COMMAND_FAILED');
    expect(err.message).toMatch(/^ls failed: .*No such file or directory/);
  });

  it('reports the exit status when stderr is empty', async () => {
    const err = await failure(run('false', []));
    expect(err.message).toBe('false failed: exit 1');
  });

  it('redacts registered secrets from stderr', async () => {
    registerSecret('Sup3rS3cretValue');
    const err = await failure(run('sh', ['-c', 'echo "auth failed for Sup3rS3cretValue" >&2; exit 2']));
    expect(err.message).toContain('auth failed for [redacted]');
    expect(err.message).not.toContain('Sup3rS3cretValue');
  });

  it('fails with COMMAND_FAILED when the program does not exist', async () => {
    const err = await failure(run('netvol-no-such-program', []));
    expect(err.code).toBe('COMMAND_FAILED');
    expect(err.message).toContain('cannot run netvol-no-such-program');
  });

  it('withTimeout() fails with TIMEOUT naming what was awaited, and passes results through', async () => {
    await expect(withTimeout(Promise.resolve(7), 1000, 'x')).resolves.toBe(7);
    const err = await failure(withTimeout(new Promise(() => undefined), 50, 'attaching volume v', 'v'));
    expect(err).toMatchObject({ code: 'TIMEOUT', volume: 'v' });
    expect(err.message).toMatch(/^attaching volume v did not finish within \d+ s$/);
  });
});
