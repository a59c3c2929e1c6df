import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ERROR_CODES, fromErrno, isNetvolError, NetvolError, redact, redactString, registerSecret, wrapError } from '../../src/errors';
import { createLogger } from '../../src/log';

function captureLogger(level = 'debug') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger(level, stream), lines };
}

/** winston writes asynchronously through the stream: wait for the records to land. */
const settle = () => new Promise((r) => setImmediate(r));

describe('error codes', () => {
  it('every code in src/errors/codes.ts is documented in README.md', async () => {
    const readme = await fs.readFile(path.join(__dirname, '..', '..', 'README.md'), 'utf8').catch(() => '');
    const missing = Object.keys(ERROR_CODES).filter((code) => !readme.includes(`\`${code}\``));
    expect(missing).toEqual([]);
  });

  it('every code has a category and a line of documentation', () => {
    for (const [code, entry] of Object.entries(ERROR_CODES)) {
      expect([code, typeof entry.doc, entry.doc.length > 10]).toEqual([code, 'string', true]);
      expect(['invalid', 'notFound', 'conflict', 'unavailable', 'permission', 'system']).toContain(entry.category);
    }
  });

  it('NetvolError carries its code, category, volume and cause', () => {
    const cause = new Error('low level');
    const err = new NetvolError('IN_USE', 'volume v is in use', { volume: 'v', cause });
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ name: 'NetvolError', code: 'IN_USE', category: 'conflict', volume: 'v', message: 'volume v is in use' });
    expect(err.cause).toBe(cause);
    expect(isNetvolError(err, 'IN_USE')).toBe(true);
    expect(isNetvolError(err, 'NOT_FOUND')).toBe(false);
    expect(isNetvolError(cause)).toBe(false);
  });

  it('wrapError() prefixes context and keeps a NetvolError code', () => {
    const inner = new NetvolError('NO_SPACE', 'disk full', { volume: 'v' });
    const wrapped = wrapError(inner, 'INTERNAL', 'cannot create volume v');
    expect(wrapped).toMatchObject({ code: 'NO_SPACE', message: 'cannot create volume v: disk full', volume: 'v', cause: inner });
    expect(wrapError(new Error('boom'), 'COMMAND_FAILED', 'cannot mount')).toMatchObject({ code: 'COMMAND_FAILED', message: 'cannot mount: boom' });
  });

  it('fromErrno() maps Node errno codes to netvol codes with the syscall', () => {
    const enospc = Object.assign(new Error('no space'), { code: 'ENOSPC', syscall: 'write' });
    expect(fromErrno(enospc, 'cannot write x', 'v')).toMatchObject({ code: 'NO_SPACE', message: 'cannot write x: ENOSPC on write', volume: 'v' });
    expect(fromErrno(Object.assign(new Error(), { code: 'EACCES' }), 'w').code).toBe('PERMISSION');
    expect(fromErrno(Object.assign(new Error(), { code: 'ENOENT' }), 'w').code).toBe('NOT_FOUND');
    expect(fromErrno(Object.assign(new Error(), { code: 'ECONNREFUSED' }), 'w').code).toBe('BACKEND_UNAVAILABLE');
    expect(fromErrno(Object.assign(new Error(), { code: 'EWEIRD' }), 'w').code).toBe('INTERNAL');
    const already = new NetvolError('TIMEOUT', 't');
    expect(fromErrno(already, 'w')).toBe(already);
  });
});

describe('redaction', () => {
  beforeAll(() => {
    registerSecret('correct-horse-battery');
    registerSecret('abc'); // too short to register: would mangle ordinary text
  });

  it('redactString() removes every occurrence of a registered secret', () => {
    expect(redactString('user:correct-horse-battery@host and correct-horse-battery again')).toBe('user:[redacted]@host and [redacted] again');
  });

  it('ignores secrets shorter than 4 characters', () => {
    expect(redactString('abc def')).toBe('abc def');
  });

  it('redact() masks secret-looking keys at any depth and scrubs registered secrets from values', () => {
    const out = redact({
      password: 'pw1',
      nested: { sshPassphrase: 'pp', privateKey: 'KEY', token: 't', clientSecret: 's', other: 'fine', list: [{ credential: 'c' }] },
      url: 'sftp://me:correct-horse-battery@nas',
      emptyPassword: '',
    });
    expect(out).toEqual({
      password: '[redacted]',
      nested: { sshPassphrase: '[redacted]', privateKey: '[redacted]', token: '[redacted]', clientSecret: '[redacted]', other: 'fine', list: [{ credential: '[redacted]' }] },
      url: 'sftp://me:[redacted]@nas',
      emptyPassword: '',
    });
  });

  it('the logger writes no registered secret and no value of a secret-looking key', async () => {
    const { log, lines } = captureLogger();
    log.info('connecting with correct-horse-battery', { password: 'plain-pw-value', backend: { name: 'nas', apiToken: 'tok-value-123' }, volume: 'v1' });
    log.child({ op: 'Create', volume: 'v2' }).warn('failed', { error: 'auth failed for correct-horse-battery' });
    await settle();
    const text = lines.join('\n');
    expect(lines).toHaveLength(2);
    expect(text).not.toContain('correct-horse-battery');
    expect(text).not.toContain('plain-pw-value');
    expect(text).not.toContain('tok-value-123');
    const first = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(first).toMatchObject({ level: 'info', message: 'connecting with [redacted]', password: '[redacted]', backend: { name: 'nas', apiToken: '[redacted]' }, volume: 'v1', service: 'netvol' });
    expect(typeof first.timestamp).toBe('string');
    expect(JSON.parse(lines[1])).toMatchObject({ level: 'warn', op: 'Create', volume: 'v2', error: 'auth failed for [redacted]' });
  });

  it('the logger honours its level', async () => {
    const { log, lines } = captureLogger('warn');
    log.info('hidden');
    log.debug('hidden too');
    log.error('shown');
    await settle();
    expect(lines.map((l) => (JSON.parse(l) as { message: string }).message)).toEqual(['shown']);
  });
});
