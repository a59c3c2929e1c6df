import type { Router } from 'express';
import type { AdminApi } from '../driver';
import type { Logger } from '../log';
import { json } from './http';

/** GET /v1/volumes[?measure=0] (netvolctl ls) and GET /v1/volumes/:name (netvolctl inspect). */
export function volumeRoutes(router: Router, api: AdminApi, log: Logger): void {
  router.get('/v1/volumes', json('ls', log, async (req) => ({ volumes: await api.listAll(req.query.measure !== '0') })));
  router.get('/v1/volumes/:name', json('inspect', log, async (req) => ({ volume: await api.inspect(String(req.params.name)) })));
}
