import type { Request, Response, Router } from 'express';
import type { AdminApi } from '../driver';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import { answerWithProgress, openDirect } from './direct';
import { errorBody, json, statusOf } from './http';

/** The trailer a backup ends with when tar finished well; an archive without it is incomplete. */
export const BACKUP_RESULT_TRAILER = 'x-netvol-backup-result';
/** The longest --consistent may freeze a volume unless the client asks for another limit. */
const DEFAULT_MAX_FREEZE_S = 600;

/**
 * Backup and restore stream tar (never JSON): GET /v1/volumes/:name/backup answers the archive, PUT
 * /v1/volumes/:name/restore and POST /v1/volumes/:name/verify read one from the request body;
 * POST /v1/volumes creates a volume for `restore --create`.
 *
 * A backup's headers say what the client needs before the first byte: the estimated size, whether
 * it is point in time and why not. Errors before the stream starts are {error, code}; a failure
 * once it streams aborts the connection, and only a finished backup carries the trailer
 * `x-netvol-backup-result: ok`, so a truncated archive can never look complete.
 *
 * A client on this host may instead have the daemon's tar write or read its archive file itself
 * (`?direct=…`, see direct.ts): the answer then carries progress lines and the result, no archive.
 */
export function backupRoutes(router: Router, api: AdminApi, log: Logger): void {
  router.post(
    '/v1/volumes',
    json('create', log, async (req) => {
      const body = await readSmallJson(req);
      const name = typeof body.name === 'string' ? body.name : '';
      const options = body.options ?? {};
      if (typeof options !== 'object' || Array.isArray(options) || Object.values(options).some((v) => typeof v !== 'string')) {
        throw new NetvolError('INVALID_OPTION', `volume ${name || '(no name)'}: options must be strings, as -o key=value gives them`);
      }
      await api.create(name, options as Record<string, string>);
      return { volume: name };
    }),
  );

  router.get('/v1/volumes/:name/backup', async (req: Request, res: Response) => {
    const name = String(req.params.name);
    const started = Date.now();
    const direct = await openDirect(req, res, 'write', log);
    if (direct === null) return;
    let stream;
    try {
      const maxFreeze = Number(req.query.maxFreeze ?? DEFAULT_MAX_FREEZE_S);
      if (!Number.isFinite(maxFreeze) || maxFreeze <= 0) throw new NetvolError('INVALID_OPTION', `volume ${name}: --max-freeze must be a positive number of seconds`, { volume: name });
      stream = await api.backup(name, { consistent: req.query.consistent === '1', maxFreezeMs: maxFreeze * 1000, output: direct && { fd: direct.handle.fd, zstd: direct.zstd } });
    } catch (err) {
      const body = errorBody(err);
      log.log(statusOf(err) >= 500 ? 'warn' : 'info', 'admin request failed', { op: 'backup', volume: name, err: body.error, code: body.code });
      res.status(statusOf(err)).json(body);
      return;
    } finally {
      // tar has its own copy of the descriptor.
      await direct?.handle.close().catch(() => undefined);
    }
    const bs = stream;
    const headers = {
      'x-netvol-volume': name,
      'x-netvol-point-in-time': bs.pointInTime ? 'yes' : 'no',
      'x-netvol-method': bs.method,
      ...(bs.estimatedBytes !== undefined ? { 'x-netvol-estimated-bytes': String(bs.estimatedBytes) } : {}),
      ...(bs.note ? { 'x-netvol-note': encodeURIComponent(bs.note) } : {}),
    };
    let clientGone = false;
    res.once('close', () => {
      if (!res.writableFinished) {
        clientGone = true;
        bs.abort();
      }
    });
    res.on('error', () => bs.abort());
    if (!bs.stream) {
      const out = await answerWithProgress(res, headers, () => bs.written(), bs.finished);
      if (out.ok) log.info('backup finished', { volume: name, method: bs.method, direct: true, warnings: out.value.warnings, durationMs: Date.now() - started });
      else log.warn(clientGone ? 'backup stopped: the client went away' : 'backup failed', { volume: name, err: errorBody(out.error).error });
      return;
    }
    const tarOut = bs.stream;
    res.writeHead(200, { 'content-type': 'application/x-tar', ...headers, trailer: BACKUP_RESULT_TRAILER });
    res.flushHeaders(); // the client learns at once whether the copy is point in time, even before tar's first byte
    // Neither side's stream error may go unheard (it would end the daemon): both end in tar being stopped.
    tarOut.on('error', () => bs.abort());
    tarOut.pipe(res, { end: false });
    try {
      const { warnings } = await bs.finished;
      res.addTrailers({ [BACKUP_RESULT_TRAILER]: 'ok' });
      res.end();
      log.info('backup finished', { volume: name, method: bs.method, warnings, durationMs: Date.now() - started });
    } catch (err) {
      log.warn(clientGone ? 'backup stopped: the client went away' : 'backup failed while streaming; the connection is cut so the client sees it', { volume: name, err: errorBody(err).error });
      res.destroy();
    }
  });

  const restoreStreamed = json('restore', log, async (req) => api.restore(String(req.params.name), req, { force: req.query.force === '1' }, clientGone(req)));
  router.put('/v1/volumes/:name/restore', async (req: Request, res: Response) => {
    const direct = await openDirect(req, res, 'read', log);
    if (direct === null) return;
    if (!direct) return restoreStreamed(req, res);
    const name = String(req.params.name);
    try {
      let read: () => number = () => 0;
      let begin: () => void = () => undefined;
      const begun = new Promise<void>((resolve) => (begin = resolve));
      const work = api.restore(name, { fd: direct.handle.fd, zstd: direct.zstd }, { force: req.query.force === '1', started: (r) => ((read = r), begin()) }, clientGone(req));
      work.catch(() => undefined);
      // A refusal before tar starts (not empty, no such volume) is an ordinary JSON error.
      const first = await Promise.race([begun.then(() => true), work.then(() => false, () => false)]);
      if (!first) {
        try {
          await work;
        } catch (err) {
          const body = errorBody(err);
          log.log(statusOf(err) >= 500 ? 'warn' : 'info', 'admin request failed', { op: 'restore', volume: name, err: body.error, code: body.code });
          res.status(statusOf(err)).json(body);
          return;
        }
      }
      const out = await answerWithProgress(res, { 'x-netvol-volume': name }, () => read(), work);
      if (!out.ok) log.warn('admin request failed', { op: 'restore', volume: name, err: errorBody(out.error).error });
    } finally {
      await direct.handle.close().catch(() => undefined);
    }
  });
  router.post(
    '/v1/volumes/:name/verify',
    json('verify', log, async (req) => api.verify(String(req.params.name), req, clientGone(req))),
  );
}

/** Aborts when the client closes the connection before it has the answer; the answer closes the connection. */
function clientGone(req: Request): AbortSignal {
  const ac = new AbortController();
  const res = req.res;
  // An answer before the whole archive arrived (a refusal, a failed tar) ends the connection rather than reading the rest.
  res?.setHeader('connection', 'close');
  req.once('aborted', () => ac.abort());
  res?.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** A small JSON body (at most 64 KiB): this router has no body parser, since restore reads its body as a stream. */
async function readSmallJson(req: Request): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 65536) throw new NetvolError('INVALID_OPTION', 'the request body is too large');
  }
  try {
    const v = JSON.parse(text || '{}') as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* answered below */
  }
  throw new NetvolError('INVALID_OPTION', 'the request body is not a JSON object');
}
