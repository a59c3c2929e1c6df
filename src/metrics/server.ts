import http from 'node:http';
import type { Logger } from '../log';
import { ListenAddress, listenFailure } from './listen';
import type { NetvolMetrics } from './registry';

/** The metrics' HTTP server: GET /metrics only, on exactly the configured address. */
export interface MetricsServer {
  /** The bound address (the port as bound). */
  address(): { host: string; port: number };
  close(): Promise<void>;
}

/** Binds the configured address (and nothing else); rejects with a CONFIG error that says what to do when it cannot. */
export function serveMetrics(listen: ListenAddress, metrics: NetvolMetrics, log: Logger): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('netvol serves Prometheus metrics at /metrics only\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET /metrics\n');
      return;
    }
    // Prometheus asks for gzip: unchanged blocks are sent as compressed before (see block.ts).
    const gzipped = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    metrics.scrapeParts(gzipped).then(
      (parts) => {
        res.writeHead(200, {
          'content-type': metrics.contentType,
          'content-length': parts.reduce((n, p) => n + p.length, 0),
          vary: 'Accept-Encoding',
          ...(gzipped ? { 'content-encoding': 'gzip' } : {}),
        });
        if (req.method === 'HEAD') return void res.end();
        for (const p of parts) res.write(p);
        res.end();
      },
      (err: Error) => {
        log.error('metrics: a scrape failed', { error: err.message });
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('netvol could not format its metrics; see the netvol log\n');
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000; // longer than Prometheus' idle connections
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenFailure(listen, err)));
    // exclusive: never share the port with another process's socket (cluster mode).
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, () => {
      server.on('error', (err) => log.error('metrics: server error', { error: err.message }));
      const bound = server.address() as { address: string; port: number };
      resolve({
        address: () => ({ host: bound.address, port: bound.port }),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
