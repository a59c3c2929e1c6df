import type { Request, Response } from 'express';
import { isNetvolError, redactString } from '../errors';
import type { Logger } from '../log';

/** The HTTP status of a failed admin request, by the error's category. */
export function statusOf(err: unknown): number {
  if (!isNetvolError(err)) return 500;
  switch (err.category) {
    case 'notFound':
      return 404;
    case 'invalid':
      return 400;
    case 'conflict':
      return 409;
    case 'unavailable':
      return 503;
    case 'permission':
      return 403;
    case 'system':
      return 500;
  }
}

/** The body of a failed admin request: our sentence (never a stack trace or secret) and the code. */
export function errorBody(err: unknown): { error: string; code: string } {
  if (isNetvolError(err)) return { error: redactString(err.message), code: err.code };
  const detail = err instanceof Error ? err.message : String(err);
  return { error: redactString(`internal error in netvol: ${detail.split('\n')[0]} (see the netvol log)`), code: 'INTERNAL' };
}

/**
 * Wraps a JSON admin handler: its result is sent as JSON, its error as {error, code} with a status
 * by category, and the request is logged with its outcome and duration.
 */
export function json(op: string, log: Logger, handler: (req: Request) => Promise<unknown>) {
  return async (req: Request, res: Response): Promise<void> => {
    const started = process.hrtime.bigint();
    const volume = typeof req.params?.name === 'string' ? req.params.name : undefined;
    try {
      const out = await handler(req);
      res.status(200).json(out ?? {});
      log.debug('admin request', { op, volume, durationMs: Number(process.hrtime.bigint() - started) / 1e6 });
    } catch (err) {
      const body = errorBody(err);
      log.log(statusOf(err) >= 500 ? 'warn' : 'info', 'admin request failed', { op, volume, err: body.error, code: body.code });
      if (!res.headersSent) res.status(statusOf(err)).json(body);
      else res.destroy();
    }
  };
}
