/**
 * A plugin-protocol client over the daemon's unix socket with one keep-alive connection, as dockerd
 * keeps one per plugin. Requests are written the way dockerd 20.10 writes them (no Content-Type).
 */
import http from 'node:http';

export interface PluginAnswer {
  status: number;
  /** Arbitrary wire shapes. */
  json: any;
}

export class PluginClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(readonly socket: string) {}

  /** `POST /<method>`; rejects on transport errors and non-JSON answers, never on an {Err}. */
  request(method: string, body?: unknown, timeoutMs = 60_000): Promise<PluginAnswer> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socket,
          agent: this.agent,
          method: 'POST',
          path: `/${method}`,
          headers: { Host: 'localhost', Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(payload) },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(raw) });
            } catch {
              reject(new Error(`POST /${method} answered ${res.statusCode} with a body that is not JSON: ${raw.slice(0, 200)}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`POST /${method} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like request(), but rejects when the answer carries a non-empty Err. */
  async call(method: string, body?: unknown, timeoutMs?: number): Promise<PluginAnswer['json']> {
    const a = await this.request(method, body, timeoutMs);
    if (a.json?.Err) throw new Error(`${method} ${JSON.stringify(body)}: ${String(a.json.Err)}`);
    return a.json;
  }

  close(): void {
    this.agent.destroy();
  }
}
