/**
 * Makes dockerd know netvol as a volume driver as soon as netvol listens, so that swarm places
 * tasks with `volume-driver=netvol` on this node without anyone running `docker volume ls` first.
 *
 * Why (moby v20.10): swarm's scheduler only places a task on a node whose description lists the
 * plugin (moby#23619). The node description is built by executor.Describe()
 * (daemon/cluster/executor/container/executor.go) from /info's Plugins.Volume, which is
 * drivers.Store.GetDriverList() (volume/drivers/extpoint.go): the names in the store's
 * `extensions` map. A legacy (socket) plugin enters that map only on first use, by name in
 * Store.lookup() or for every socket found in Store.GetAllDrivers(), which a volume listing calls
 * (volume/service/store.go list → pkg/plugins GetAll: scan, activate). So one
 * `GET /volumes?filters={"driver":["<name>"]}` puts netvol there; swarmkit's agent re-reads the
 * description every 20 s (agent.go nodeUpdatePeriod) and the task leaves Pending. A managed plugin
 * is listed from `docker plugin enable` on and needs none of this.
 *
 * Everything here runs in the background, retries for a bounded time, and never fails the daemon.
 * After a success it follows dockerd's event stream: when dockerd restarts (and forgets), it
 * announces again.
 */
import http from 'node:http';
import path from 'node:path';
import type { Logger } from '../log';
import { apiGet } from './docker-client';

export interface AnnounceOptions {
  /** dockerd's API socket: `unix:///run/docker.sock` or an absolute path; `''` turns this off. */
  dockerHost: string;
  /** The name dockerd knows the plugin by (see pluginNameOf). */
  pluginName: string;
  logger: Logger;
  /** How long one round keeps trying before it gives up with one info log. Default 2 min. */
  retryForMs?: number;
  /** Bound of each API call. A listing activates every legacy plugin dockerd finds. Default 30 s. */
  requestTimeoutMs?: number;
  /** Announce again after dockerd restarts (by watching its event stream). Default true. */
  followRestarts?: boolean;
}

export interface Announcement {
  /** Resolves true once dockerd lists the plugin, false when the first round gave up or was stopped. */
  readonly first: Promise<boolean>;
  /** Ends retries and the event watch; safe to call more than once. */
  stop(): void;
}

/** dockerd names a legacy plugin after its socket file: /run/docker/plugins/netvol.sock → netvol. */
export function pluginNameOf(socket: string): string {
  return path.basename(socket, '.sock');
}

/** The socket path of a `unix://` Docker host, or undefined for any other kind. */
export function dockerSocketOf(dockerHost: string): string | undefined {
  if (dockerHost.startsWith('unix://')) return dockerHost.slice('unix://'.length) || undefined;
  return dockerHost.startsWith('/') ? dockerHost : undefined;
}

/**
 * Starts announcing netvol to the dockerd at `dockerHost` and returns at once. Idle (and `first`
 * resolves false) when dockerHost is empty or not a unix socket.
 */
export function announceToDocker(opts: AnnounceOptions): Announcement {
  const log = opts.logger.child({ op: 'announce' });
  const retryForMs = opts.retryForMs ?? 120_000;
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const socketPath = dockerSocketOf(opts.dockerHost);
  const inFlight = new Set<http.ClientRequest>();
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;

  const stop = (): void => {
    stopped = true;
    if (timer) clearTimeout(timer);
    wake?.();
    for (const req of inFlight) req.destroy();
  };
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
      timer.unref();
    });

  const listFilter = encodeURIComponent(JSON.stringify({ driver: [opts.pluginName] }));
  const eventsFilter = encodeURIComponent(JSON.stringify({ type: ['daemon'] }));

  /** One attempt: a listing filtered to our driver, then /info to see that dockerd now lists it. */
  const attempt = async (sock: string): Promise<{ ok: boolean; why: string }> => {
    let why = '';
    try {
      const r = await apiGet(sock, `/volumes?filters=${listFilter}`, timeoutMs, inFlight);
      if (r.status !== 200) why = `volume listing answered ${r.status}: ${r.body.trim().slice(0, 200)}`;
    } catch (err) {
      // dockerd adds the driver before it calls List, so a slow List of ours is no failure: ask /info.
      why = (err as Error).message;
    }
    try {
      const info = await apiGet(sock, '/info', timeoutMs, inFlight);
      if (info.status !== 200) return { ok: false, why: why || `/info answered ${info.status}` };
      const volumes = (JSON.parse(info.body) as { Plugins?: { Volume?: string[] } }).Plugins?.Volume ?? [];
      if (volumes.includes(opts.pluginName)) return { ok: true, why: '' };
      return { ok: false, why: why || `dockerd lists volume plugins ${volumes.join(', ')} but not ${opts.pluginName}: is its socket in dockerd's plugin folder?` };
    } catch (err) {
      return { ok: false, why: why || (err as Error).message };
    }
  };

  /** Tries until dockerd lists the plugin or retryForMs has passed. */
  const round = async (sock: string): Promise<boolean> => {
    const deadline = Date.now() + retryForMs;
    let delay = 500;
    let why = '';
    while (!stopped) {
      const r = await attempt(sock);
      if (r.ok) {
        log.info('dockerd lists netvol as a volume plugin; swarm sees it within about 20 s', { dockerHost: opts.dockerHost, plugin: opts.pluginName });
        return true;
      }
      why = r.why;
      log.debug('dockerd does not list netvol yet', { dockerHost: opts.dockerHost, why });
      if (Date.now() + delay > deadline) break;
      await pause(delay);
      delay = Math.min(delay * 2, 5000);
    }
    if (!stopped) {
      log.info(`could not make dockerd list netvol within ${Math.round(retryForMs / 1000)} s; swarm places no task with this volume driver on this node until dockerd has used it once: run \`docker volume ls\` on this node`, { dockerHost: opts.dockerHost, plugin: opts.pluginName, why });
    }
    return false;
  };

  /** Resolves when dockerd's event stream ends (dockerd stopped); rejects when it cannot be opened. */
  const watch = (sock: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.get({ socketPath: sock, path: `/events?filters=${eventsFilter}`, agent: false, headers: { Host: 'docker' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`event stream answered ${res.statusCode}`));
          return;
        }
        res.resume();
        res.on('close', () => resolve());
      });
      inFlight.add(req);
      req.on('close', () => inFlight.delete(req));
      req.on('error', (err) => (stopped ? resolve() : reject(err)));
    });

  const run = async (sock: string, firstDone: (ok: boolean) => void): Promise<void> => {
    let ok = await round(sock);
    firstDone(ok);
    while (ok && !stopped && opts.followRestarts !== false) {
      const opened = Date.now();
      try {
        await watch(sock);
      } catch (err) {
        if (!stopped) log.debug('not following dockerd restarts', { why: (err as Error).message });
        return;
      }
      if (stopped) return;
      log.info('dockerd went away; announcing netvol again when it is back', { dockerHost: opts.dockerHost });
      await pause(Math.max(0, 2000 - (Date.now() - opened)));
      ok = await round(sock);
    }
  };

  let first: Promise<boolean>;
  if (!socketPath) {
    if (opts.dockerHost) log.info('dockerHost is not a unix socket; not announcing netvol to dockerd', { dockerHost: opts.dockerHost });
    first = Promise.resolve(false);
  } else {
    first = new Promise<boolean>((resolve) => {
      run(socketPath, resolve)
        .catch((err: unknown) => log.warn('announcing netvol to dockerd failed', { why: (err as Error)?.message ?? String(err) }))
        .finally(() => resolve(false));
    });
  }
  return { first, stop };
}
