import http from 'node:http';

export interface Answer {
  status: number;
  contentType: string | undefined;
  text: string;
  /** The body parsed as JSON (throws in the test if it is not JSON). */
  json: Record<string, unknown>;
}

/**
 * A POST over a Unix socket as dockerd 20.10 sends it: no Content-Type, an Accept header, and the
 * body exactly as given (undefined sends no body at all).
 */
export function post(socketPath: string, route: string, body?: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Accept: 'application/vnd.docker.plugins.v1.2+json', Host: '', ...opts.headers };
    if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
    const req = http.request({ socketPath, path: route, method: opts.method ?? 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = { __notJson: text };
        }
        resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], text, json });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
