import express, { type Router } from 'express';
import type { AdminApi } from '../driver';
import type { Logger } from '../log';
import { json } from './http';

/** POST /v1/volumes/:name/resize {"size": "2G"} (netvolctl resize): grows an image volume. */
export function resizeRoutes(router: Router, api: AdminApi, log: Logger): void {
  router.post(
    '/v1/volumes/:name/resize',
    express.json({ limit: '4kb' }),
    json('resize', log, async (req) => {
      const body = (req.body ?? {}) as { size?: unknown };
      return { resize: await api.resize(String(req.params.name), body.size) };
    }),
  );
}
