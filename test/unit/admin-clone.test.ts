/** The admin API's clone route over a real Unix socket, with a fake AdminApi that only records what it was asked. */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createAdminApp } from '../../src/admin';
import type { AdminApi, CloneRequest, CloneResult } from '../../src/driver';
import { NetvolError } from '../../src/errors';
import { createLogger } from '../../src/log';

let dir: string;
let socket: string;
let server: http.Server;
let behaviour: (name: string, req: CloneRequest) => Promise<CloneResult>;
const asked: Array<{ name: string; req: CloneRequest }> = [];

const result: CloneResult = { name: 'dst', source: 'src', backend: 'local', layout: 'image', sizeBytes: 1024, method: 'reflink', pointInTime: true, durationMs: 12 };

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nv-admin-clone-'));
  socket = path.join(dir, 'admin.sock');
  const api = {
    clone: (name: string, req: CloneRequest) => {
      asked.push({ name, req });
      return behaviour(name, req);
    },
  } as unknown as AdminApi;
  server = http.createServer(createAdminApp(api, createLogger('error')));
  await new Promise<void>((r) => server.listen(socket, r));
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await fs.rm(dir, { recursive: true, force: true });
});

function send(body: unknown, onResponse?: (req: http.ClientRequest, res: http.IncomingMessage) => void): Promise<{ status: number; type: string; text: string }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method: 'POST', path: '/v1/volumes/dst/clone', headers: { 'content-type': 'application/json', 'content-length': String(payload.length) } }, (res) => {
      onResponse?.(req, res);
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

test('streams progress lines, then the result, and passes source, options and --consistent through', async () => {
  behaviour = async (_name, req) => {
    req.progress?.({ doneBytes: 1, totalBytes: 4 });
    req.progress?.({ doneBytes: 4, totalBytes: 4 });
    return result;
  };
  const a = await send({ source: 'src', opts: { size: '2G' }, consistent: true });
  expect(a.status).toBe(200);
  expect(a.type).toContain('application/x-ndjson');
  expect(a.text.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ progress: { doneBytes: 1, totalBytes: 4 } }, { progress: { doneBytes: 4, totalBytes: 4 } }, { result }]);
  expect(asked.at(-1)).toMatchObject({ name: 'dst', req: { source: 'src', opts: { size: '2G' }, consistent: true } });
});

test('a failure before any progress is a JSON error with the status of its category', async () => {
  behaviour = async () => {
    throw new NetvolError('NOT_FOUND', 'volume dst: cannot clone volume src: it was not found on any netvol backend (local)', { volume: 'dst' });
  };
  const a = await send({ source: 'src' });
  expect(a.status).toBe(404);
  expect(JSON.parse(a.text)).toEqual({ error: 'volume dst: cannot clone volume src: it was not found on any netvol backend (local)', code: 'NOT_FOUND' });
});

test('a failure after progress began ends the stream with an error line', async () => {
  behaviour = async (_name, req) => {
    req.progress?.({ doneBytes: 1, totalBytes: 4 });
    throw new NetvolError('NO_SPACE', 'backend local: cannot copy volume src to dst: the disk is full', { volume: 'dst' });
  };
  const a = await send({ source: 'src' });
  expect(a.status).toBe(200);
  expect(a.text.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ progress: { doneBytes: 1, totalBytes: 4 } }, { error: 'backend local: cannot copy volume src to dst: the disk is full', code: 'NO_SPACE' }]);
});

test('refuses a request without a source, or with options that are not strings, before asking the driver', async () => {
  const before = asked.length;
  const a = await send({ opts: {} });
  expect(a.status).toBe(400);
  expect(JSON.parse(a.text)).toMatchObject({ code: 'INVALID_OPTION', error: 'volume dst: the clone request names no source volume' });
  const b = await send({ source: 'src', opts: { size: 5 } });
  expect(JSON.parse(b.text)).toMatchObject({ code: 'INVALID_OPTION', error: 'volume dst: clone options must be a map of strings' });
  expect(asked.length).toBe(before);
});

test('when netvolctl goes away mid-copy, the driver\'s signal aborts (so the copy stops and the clone is undone)', async () => {
  let aborted: ((reason: unknown) => void) | undefined;
  const abortedWith = new Promise<unknown>((r) => (aborted = r));
  behaviour = (_name, req) =>
    new Promise((_, reject) => {
      req.progress?.({ doneBytes: 1, totalBytes: 4 });
      req.signal?.addEventListener('abort', () => {
        aborted?.(req.signal?.reason);
        reject(req.signal?.reason);
      });
    });
  await send({ source: 'src' }, (req) => req.destroy());
  const reason = await abortedWith;
  expect(reason).toBeInstanceOf(NetvolError);
  expect((reason as Error).message).toBe('volume dst: the clone was stopped because netvolctl went away; nothing of dst was kept');
});
