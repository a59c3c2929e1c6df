import express, { NextFunction, Request, Response } from 'express';
import type { AdminApi } from '../driver';
import type { Logger } from '../log';
import { gcRoutes } from './gc';
import { backupRoutes } from './backup';
import { errorBody } from './http';
import { resizeRoutes } from './resize';
import { cloneRoutes } from './clone';
import { volumeRoutes } from './volumes';

/**
 * The admin API: operations Docker has no verb for (netvolctl is its client), on its own Unix
 * socket (root only, 0600), never on the plugin socket and never over TCP. Each operation's routes
 * live in their own file; this only puts them together. JSON in and out, except backup and
 * restore, which stream tar.
 */
export function createAdminApp(api: AdminApi, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const router = express.Router();
  volumeRoutes(router, api, log);
  resizeRoutes(router, api, log);
  cloneRoutes(router, api, log);
  gcRoutes(router, api, log);
  backupRoutes(router, api, log);
  app.use(router);
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: `the netvol admin API has no ${req.method} ${req.path}; is netvolctl newer than the daemon?`, code: 'NOT_FOUND' });
  });
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    res.status(400).json(errorBody(new Error(`the request cannot be read: ${err.message}`)));
  });
  return app;
}
