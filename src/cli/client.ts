import { existsSync } from 'node:fs';
import http from 'node:http';

/** The admin socket when nothing says otherwise: the default stateDir's (host service and managed plugin alike). */
export const DEFAULT_ADMIN_SOCKET = '/var/lib/netvol/admin.sock';

/** An error netvolctl prints as it is, with no stack: the daemon's sentence, or why it could not be asked. */
export class CliError extends Error {
  constructor(message: string, readonly code = 'CLI') {
    super(message);
  }
}

/** The host service's config file (packaging/netvol.service); also where a managed plugin's host config lives. */
export const HOST_CONFIG = '/etc/netvol/config.yaml';

/**
 * Where the daemon's admin socket is: --socket, else NETVOL_ADMIN_SOCKET, else the adminSocket of
 * the config file given (--config or NETVOL_CONFIG), else of the host service's config file when
 * there is one, else the default. The default serves the managed plugin too: it bind-mounts the
 * host's /var/lib/netvol at the same path, so its socket shows on the host where netvolctl looks.
 */
export async function resolveSocket(opts: { socket?: string; config?: string }, hostConfig = HOST_CONFIG): Promise<string> {
  if (opts.socket) return opts.socket;
  if (process.env.NETVOL_ADMIN_SOCKET) return process.env.NETVOL_ADMIN_SOCKET;
  const given = opts.config ?? process.env.NETVOL_CONFIG;
  const file = given ?? (existsSync(hostConfig) ? hostConfig : undefined);
  if (file) {
    // Loaded only here: the config schema takes most of a second to load.
    const { loadConfig } = await import('../config');
    const config = await loadConfig(file).catch((err: Error) => {
      throw new CliError(`${err.message}${given ? '' : ' (netvolctl reads it to find the admin socket; give the socket with --socket or NETVOL_ADMIN_SOCKET instead)'}`);
    });
    if (!config.adminSocket) throw new CliError(`the admin socket is turned off in ${file} (adminSocket: ""): netvolctl cannot reach the daemon`);
    return config.adminSocket;
  }
  return DEFAULT_ADMIN_SOCKET;
}

function unreachable(socket: string, err: NodeJS.ErrnoException): CliError {
  if (err.code === 'EACCES') return new CliError(`cannot open the netvol admin socket ${socket}: permission denied (it is root-only: run netvolctl as root)`);
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
    return new CliError(`cannot reach the netvol daemon at ${socket}: is it running? (start it, or give its admin socket with --socket or NETVOL_ADMIN_SOCKET)`);
  }
  return new CliError(`cannot talk to the netvol daemon at ${socket}: ${err.message}`);
}

/** The daemon's admin API over its Unix socket. */
export class AdminClient {
  constructor(readonly socket: string) {}

  /** Sends a request and returns the response without reading it (for streams). `body` may be piped in by the caller when undefined. */
  open(method: string, path: string, headers: Record<string, string> = {}): { req: http.ClientRequest; res: Promise<http.IncomingMessage> } {
    const req = http.request({ socketPath: this.socket, method, path, headers });
    const res = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (err: NodeJS.ErrnoException) => reject(unreachable(this.socket, err)));
    });
    return { req, res };
  }

  /** A JSON request; a failure answer becomes a CliError carrying the daemon's sentence. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const { req, res } = this.open(method, path, payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {});
    req.end(payload);
    const answer = await res;
    return (await readJson(answer)) as T;
  }
}

/** Reads a JSON answer; a non-2xx one throws its {error, code} as a CliError. */
export async function readJson(res: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    throw new CliError(`the netvol daemon answered ${res.statusCode} with something that is not JSON: ${text.slice(0, 200)}`);
  }
  const status = res.statusCode ?? 500;
  if (status < 200 || status >= 300) {
    const e = parsed as { error?: string; code?: string };
    throw new CliError(e.error ?? `the netvol daemon answered ${status}`, e.code ?? 'INTERNAL');
  }
  return parsed;
}
