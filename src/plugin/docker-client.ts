/**
 * The few calls netvol makes to the dockerd of its host over its API socket: a GET with a bound,
 * and which running containers use a volume. Nothing here fails the daemon; callers decide.
 */
import http from 'node:http';

export interface ApiAnswer {
  status: number;
  body: string;
}

/** One GET on dockerd's socket, destroyed after `timeoutMs`; `track` holds it while in flight (so it can be cancelled). */
export function apiGet(socketPath: string, urlPath: string, timeoutMs: number, track?: Set<http.ClientRequest>): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, agent: false, headers: { Host: 'docker' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    track?.add(req);
    req.on('close', () => track?.delete(req));
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Whether a running (or paused) container uses the volume `name`: the Engine API's container list
 * (running ones only, as without `all`) filtered by volume. dockerd knows a plugin's volume by the
 * name the plugin reports, so netvol's name is the one to ask for. Rejects when dockerd cannot be
 * asked or answers otherwise than 200.
 */
export async function runningContainersUse(socketPath: string, name: string, timeoutMs: number): Promise<boolean> {
  const filter = encodeURIComponent(JSON.stringify({ volume: [name] }));
  const r = await apiGet(socketPath, `/containers/json?filters=${filter}`, timeoutMs);
  if (r.status !== 200) throw new Error(`the container listing answered ${r.status}: ${r.body.trim().slice(0, 200)}`);
  const containers = JSON.parse(r.body) as unknown;
  if (!Array.isArray(containers)) throw new Error('the container listing is not a list');
  return containers.length > 0;
}
