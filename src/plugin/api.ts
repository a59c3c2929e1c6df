import express, { NextFunction, Request, Response } from 'express';
import { isNetvolError, redactString } from '../errors';
import type { Logger } from '../log';
import { CreateRequest, DockerVolume, MountRequest, NameRequest, PLUGIN_CONTENT_TYPE, VolumeDriverApi, VolumeView } from './types';

function toDocker(v: VolumeView): DockerVolume {
  const out: DockerVolume = { Name: v.name, Mountpoint: v.mountpoint, Status: v.status };
  if (v.createdAt) out.CreatedAt = v.createdAt;
  return out;
}

/** The Err text dockerd shows after "VolumeDriver.X: ": our sentence, never a stack trace or secret. */
export function errText(err: unknown): string {
  if (isNetvolError(err)) return redactString(err.message);
  const detail = err instanceof Error ? err.message : String(err);
  return redactString(`internal error in netvol: ${detail.split('\n')[0]} (see the netvol log)`);
}

/** Routes dockerd calls to probe every driver for a name before it creates a volume: "not found" there is routine. */
const PROBES = new Set(['VolumeDriver.Get', 'VolumeDriver.Path']);

/**
 * The level of a failed request's log line, by what the failure means (see the README's logging
 * section): debug for dockerd's routine probe of an unknown name; info when netvol works and
 * refused the caller's request (bad input, a conflict, an unknown volume); warn when a backend
 * cannot serve now and may recover (unreachable, timed out, full); error when an operator must
 * act (credentials or permissions refused, a helper program failed, anything unexpected).
 */
export function failureLevel(op: string, err: unknown): 'debug' | 'info' | 'warn' | 'error' {
  if (!isNetvolError(err)) return 'error';
  switch (err.category) {
    case 'notFound':
      return PROBES.has(op) ? 'debug' : 'info';
    case 'invalid':
    case 'conflict':
      return 'info';
    case 'unavailable':
      return 'warn';
    case 'permission':
    case 'system':
      return 'error';
  }
}

type Handler = (body: Record<string, unknown>) => Promise<Record<string, unknown>>;

const BODY_LIMIT = '1mb';
const BODY_LIMIT_TEXT = '1 MiB';

/** What the JSON body parser hands the error handler (body-parser's http-errors). */
interface BodyError extends Error {
  type?: string;
  status?: number;
  body?: string;
  length?: number;
}

const SECRET_VALUE = /("?[\w-]*(?:pass|secret|token|credential|private_?key)[\w-]*"?\s*[:=]\s*)("(?:[^"\\]|\\.)*"?|[^\s,}]*)/gi;

/** The start of a body for the log: one line, no control characters, secrets masked, at most 80 characters. */
function excerpt(body: string): string {
  const head = redactString(body.slice(0, 400)).replace(SECRET_VALUE, '$1"[redacted]"');
  const clean = head.replace(/[\u0000-\u001f\u007f]/g, '·');
  return clean.length > 80 ? `${clean.slice(0, 79)}…` : clean;
}

/**
 * The HTTP face of a VolumeDriver: every route decodes the body, calls one driver method and
 * encodes its result or {Err}. It knows nothing about storage.
 */
export function createApp(driver: VolumeDriverApi, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // dockerd sends no Content-Type and an empty body on Activate: parse every body as JSON.
  app.use(express.json({ type: () => true, limit: BODY_LIMIT, strict: false }));

  const route = (method: string, handler: Handler): void => {
    app.post(`/${method}`, async (req: Request, res: Response) => {
      const started = process.hrtime.bigint();
      const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
      const meta = { op: method, volume: typeof body.Name === 'string' ? body.Name : undefined, mountId: typeof body.ID === 'string' ? body.ID : undefined };
      let answer: Record<string, unknown>;
      let status = 200;
      try {
        answer = await handler(body);
      } catch (err) {
        // dockerd 20.10 prefixes "VolumeDriver.<Call>: " only to errors that come with a non-200 status.
        status = 500;
        answer = { Err: errText(err) };
        log.log(failureLevel(method, err), 'request failed', { ...meta, err: answer.Err, code: isNetvolError(err) ? err.code : 'INTERNAL' });
      }
      res.type(PLUGIN_CONTENT_TYPE).status(status).send(JSON.stringify(answer));
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      log.debug('request', { ...meta, durationMs: Math.round(durationMs * 1000) / 1000 });
    });
  };

  route('Plugin.Activate', async () => ({ Implements: ['VolumeDriver'] }));
  route('VolumeDriver.Capabilities', async () => ({ Capabilities: { Scope: driver.scope } }));
  route('VolumeDriver.Create', async (b: CreateRequest) => {
    await driver.create(b.Name, b.Opts);
    return { Err: '' };
  });
  route('VolumeDriver.Remove', async (b: NameRequest) => {
    await driver.remove(b.Name);
    return { Err: '' };
  });
  route('VolumeDriver.Mount', async (b: MountRequest) => ({ Mountpoint: await driver.mount(b.Name, b.ID), Err: '' }));
  route('VolumeDriver.Unmount', async (b: MountRequest) => {
    await driver.unmount(b.Name, b.ID);
    return { Err: '' };
  });
  route('VolumeDriver.Path', async (b: NameRequest) => ({ Mountpoint: await driver.path(b.Name), Err: '' }));
  route('VolumeDriver.Get', async (b: NameRequest) => ({ Volume: toDocker(await driver.get(b.Name)), Err: '' }));
  route('VolumeDriver.List', async () => ({ Volumes: (await driver.list()).map(toDocker), Err: '' }));

  app.use((req: Request, res: Response) => {
    res.status(404).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: `netvol does not implement ${req.method} ${req.path}` }));
  });
  // Malformed JSON and other parser errors still answer a JSON object, in our words, and are logged.
  app.use((err: BodyError, req: Request, res: Response, _next: NextFunction) => {
    const op = req.path.replace(/^\//, '').slice(0, 64);
    const bytes = typeof err.body === 'string' ? Buffer.byteLength(err.body) : (err.length ?? (Number(req.headers['content-length']) || undefined));
    let why: string;
    if (err.type === 'entity.parse.failed') {
      why = `its body is not valid JSON (${bytes} bytes)`;
      log.warn('request body is not JSON', { op, bytes, excerpt: excerpt(err.body ?? '') });
    } else if (err.type === 'entity.too.large') {
      why = `its body is larger than ${BODY_LIMIT_TEXT} (${bytes} bytes)`;
      log.warn('request body is too large', { op, bytes });
    } else {
      why = `its body cannot be read (${err.type ?? 'unexpected error'})`;
      log.warn('request body cannot be read', { op, bytes, reason: err.type ?? redactString(String(err.message).split('\n')[0]) });
    }
    res.status(err.status ?? 400).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: `netvol could not read the ${op} request: ${why}` }));
  });
  return app;
}
