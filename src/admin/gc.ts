import express, { type Router } from 'express';
import { z } from 'zod';
import type { AdminApi } from '../driver';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import { json } from './http';

const gcBody = z.strictObject({
  apply: z.boolean().default(false),
  olderThanMs: z.number().int().nonnegative().optional(),
  retained: z.boolean().default(false),
  hostAgeMs: z.number().int().nonnegative().optional(),
});

/** POST /v1/gc {apply, olderThanMs, retained, hostAgeMs} (netvolctl gc): what nobody uses, removed only with apply. */
export function gcRoutes(router: Router, api: AdminApi, log: Logger): void {
  router.post(
    '/v1/gc',
    express.json({ limit: '16kb' }),
    json('gc', log, async (req) => {
      const parsed = gcBody.safeParse(req.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new NetvolError('INVALID_OPTION', `gc: ${issue.path.join('.') || 'the request'}: ${issue.message} (accepted: apply, olderThanMs, retained, hostAgeMs)`);
      }
      return api.gc(parsed.data);
    }),
  );
}
