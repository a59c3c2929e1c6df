import express, { type Request, type Response, type Router } from 'express';
import type { AdminApi } from '../driver';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import { errorBody, statusOf } from './http';

/**
 * POST /v1/volumes/:name/clone {source, opts?, consistent?} (netvolctl clone). The answer is
 * newline-delimited JSON once the copy is under way: `{"progress":{doneBytes,totalBytes}}` lines
 * about every second, then `{"result":{…}}` or `{"error","code"}`. A request that fails before any
 * progress is answered as every admin error is: a JSON body with a status by category.
 */
export function cloneRoutes(router: Router, api: AdminApi, log: Logger): void {
  router.post('/v1/volumes/:name/clone', express.json({ limit: '16kb' }), (req: Request, res: Response) => void serve(req, res, api, log));
}

async function serve(req: Request, res: Response, api: AdminApi, log: Logger): Promise<void> {
  const name = String(req.params.name);
  const started = Date.now();
  const body = (req.body ?? {}) as { source?: unknown; opts?: unknown; consistent?: unknown };
  let streaming = false;
  // netvolctl stopped (Ctrl-C): the copy is stopped and the half-made clone undone.
  const gone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) gone.abort(new NetvolError('TIMEOUT', `volume ${name}: the clone was stopped because netvolctl went away; nothing of ${name} was kept`, { volume: name }));
  });
  const line = (value: unknown): void => {
    if (res.destroyed) return;
    if (!streaming) {
      streaming = true;
      res.status(200).setHeader('content-type', 'application/x-ndjson');
    }
    res.write(`${JSON.stringify(value)}\n`);
  };
  try {
    if (typeof body.source !== 'string') throw new NetvolError('INVALID_OPTION', `volume ${name}: the clone request names no source volume`, { volume: name });
    const opts = body.opts ?? {};
    if (typeof opts !== 'object' || opts === null || Array.isArray(opts) || Object.values(opts).some((v) => typeof v !== 'string')) {
      throw new NetvolError('INVALID_OPTION', `volume ${name}: clone options must be a map of strings`, { volume: name });
    }
    const result = await api.clone(name, {
      source: body.source,
      opts: opts as Record<string, unknown>,
      consistent: body.consistent === true,
      progress: (p) => line({ progress: p }),
      signal: gone.signal,
    });
    line({ result });
    res.end();
    log.info('admin request', { op: 'clone', volume: name, source: body.source, method: result.method, pointInTime: result.pointInTime, durationMs: Date.now() - started });
  } catch (err) {
    const answer = errorBody(err);
    log.log(statusOf(err) >= 500 ? 'warn' : 'info', 'admin request failed', { op: 'clone', volume: name, err: answer.error, code: answer.code });
    if (res.destroyed) return;
    if (streaming) {
      res.write(`${JSON.stringify(answer)}\n`);
      res.end();
    } else if (!res.headersSent) res.status(statusOf(err)).json(answer);
    else res.destroy();
  }
}
