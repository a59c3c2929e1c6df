import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { isNetvolError, NetvolError, registerSecret } from '../../src/errors';
import { createLogger } from '../../src/log';
import { logCommandsTo, onCommand, run, spawnDetached } from '../../src/system';
import type { CommandEvent } from '../../src/system';

/**
 * Helper programs (mkfs, losetup, mount, sshfs...) speak through stderr: the first line that says
 * something is what the user needs (issue 13, item 3); their argv is logged at debug (item 8).
 */
async function failure(work: Promise<unknown>): Promise<NetvolError> {
  try {
    await work;
  } catch (err) {
    if (isNetvolError(err)) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

const sh = (script: string) => run('sh', ['-c', script]);

describe('a helper that fails: its first meaningful stderr line, not a garbled blob', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-helper-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('mkfs.xfs under its minimum: the error is its first line, without the usage text that follows', async () => {
    const image = path.join(dir, 'small-xfs.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 64 * 1024 * 1024);
    const err = await failure(run('mkfs.xfs', ['-q', '-f', '-K', image]));
    expect(err.code).toBe('COMMAND_FAILED');
    expect(err.message).toBe('mkfs.xfs failed: Filesystem must be larger than 300MB.');
  });

  it('skips blank lines and a version banner before the message', async () => {
    const err = await failure(sh('printf "\\nmke2fs 1.47.0 (5-Feb-2023)\\n\\n  Filesystem too small for a journal  \\nsecond line\\n" >&2; exit 1'));
    expect(err.message).toBe('sh failed: Filesystem too small for a journal');
  });

  it('keeps the line in one piece: tabs and repeated spaces folded, a long line cut with an ellipsis', async () => {
    const err = await failure(sh(`printf "mount:\\t/x:   wrong fs type ${'z'.repeat(400)}\\n" >&2; exit 32`));
    expect(err.message.startsWith('sh failed: mount: /x: wrong fs type zzz')).toBe(true);
    expect(err.message.endsWith('…')).toBe(true);
    expect(err.message.length).toBeLessThanOrEqual(240);
  });

  it('strips terminal control sequences from the line', async () => {
    const err = await failure(sh('printf "\\033[31merror:\\033[0m device busy\\r\\n" >&2; exit 1'));
    expect(err.message).toBe('sh failed: error: device busy');
  });

  it('names the exit status when stderr has nothing to say, and the signal when killed', async () => {
    expect((await failure(sh('printf "\\n\\n" >&2; exit 3'))).message).toBe('sh failed: exit 3');
    expect((await failure(sh('kill -TERM $$'))).message).toBe('sh failed: killed by SIGTERM');
  });

  it('redacts a registered secret in the line', async () => {
    registerSecret('Hx9-helper-secret');
    const err = await failure(sh('echo "auth failed for Hx9-helper-secret" >&2; echo usage >&2; exit 2'));
    expect(err.message).toBe('sh failed: auth failed for [redacted]');
  });

  it('keeps the full stderr on the error for the log, redacted', async () => {
    const err = await failure(sh('echo first >&2; echo "second Hx9-helper-secret" >&2; exit 1'));
    expect((err as NetvolError & { stderr?: string }).stderr).toBe('first\nsecond [redacted]');
  });
});

describe('helper commands are observable', () => {
  it('onCommand() sees each run with its argv, exit code and duration, secrets redacted, stdin never', async () => {
    registerSecret('Arg-S3cret-value');
    const seen: CommandEvent[] = [];
    const stop = onCommand((e) => seen.push(e));
    try {
      await run('printf', ['%s', 'x Arg-S3cret-value'], { input: 'stdin-password-1' });
      await failure(run('false', []));
    } finally {
      stop();
    }
    await run('true', []);
    expect(seen.map((e) => [e.phase, e.command])).toEqual([
      ['start', 'printf'],
      ['end', 'printf'],
      ['start', 'false'],
      ['end', 'false'],
    ]);
    expect(seen[0].args).toEqual(['%s', 'x [redacted]']);
    expect(seen[0].stdinBytes).toBe('stdin-password-1'.length);
    expect(seen[1]).toMatchObject({ exitCode: 0 });
    expect(typeof seen[1].durationMs).toBe('number');
    expect(seen[3]).toMatchObject({ exitCode: 1 });
    expect(JSON.stringify(seen)).not.toContain('stdin-password-1');
    expect(JSON.stringify(seen)).not.toContain('Arg-S3cret-value');
  });

  it('spawnDetached() is seen too, with its pid', async () => {
    const seen: CommandEvent[] = [];
    const stop = onCommand((e) => seen.push(e));
    let pid = 0;
    try {
      pid = spawnDetached('sleep', ['0.1']);
    } finally {
      stop();
    }
    expect(seen).toEqual([expect.objectContaining({ phase: 'start', command: 'sleep', args: ['0.1'], pid, detached: true })]);
  });

  it('logCommandsTo() writes each helper command at debug with its argv, and nothing at info', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const stop = logCommandsTo(createLogger('debug', stream));
    const stopInfo = logCommandsTo(createLogger('info', stream));
    try {
      await run('printf', ['%s', 'hello'], { input: 'stdin-password-2' });
    } finally {
      stop();
      stopInfo();
    }
    await new Promise((r) => setImmediate(r));
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r.level, r.message])).toEqual([
      ['debug', 'helper command'],
      ['debug', 'helper command finished'],
    ]);
    expect(records[0]).toMatchObject({ command: 'printf', argv: ['%s', 'hello'], stdinBytes: 16 });
    expect(records[1]).toMatchObject({ command: 'printf', exitCode: 0 });
    expect(lines.join('\n')).not.toContain('stdin-password-2');
  });
});
