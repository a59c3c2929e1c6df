/**
 * Runs the real netvol daemon (`node dist/main.js --config FILE`) as a separate process, as Docker
 * would see it: a legacy plugin socket under /run/docker/plugins with a unique name per run.
 * Build dist/ first (`npm run build`).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { isAlive, killAllMentioning, removeTree, settleWithin, terminate, waitFor } from './dockerd';

export const PLUGIN_DIR = '/run/docker/plugins';
const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const MAIN_JS = path.join(REPO_ROOT, 'dist', 'main.js');

export interface BackendConfig {
  type: string;
  [key: string]: unknown;
}

export interface StartNetvolOptions {
  /** Backends by name; default one local backend `local` under the run's folder. */
  backends?: Record<string, BackendConfig>;
  /** Default `<run>/state`. */
  stateDir?: string;
  /** Merged over the generated config (e.g. scope, hostId, mountRoot). */
  extraConfig?: Record<string, unknown>;
  /** Milliseconds to wait for the socket to answer Plugin.Activate. Default 30 s. */
  startTimeoutMs?: number;
}

export interface PluginResponse {
  status: number;
  /** The parsed JSON body, or undefined when it was not JSON (any: tests read arbitrary wire shapes). */
  json: any;
  raw: string;
  headers: http.IncomingHttpHeaders;
}

export interface Netvol {
  readonly pluginName: string;
  readonly socket: string;
  /** The run's private folder: state, backends, config and logs live below it. */
  readonly root: string;
  readonly stateDir: string;
  readonly configPath: string;
  readonly config: Record<string, unknown>;
  /** Path of the default local backend's folder (when the default backends are used). */
  readonly localPath: string;
  /** stdout of every daemon process of this run, one entry per line. */
  readonly logs: string[];
  /** Where stdout and stderr of every daemon process of this run are appended. */
  readonly logFile: string;
  readonly pid: number | undefined;
  /** Log lines parsed as JSON (lines that are not JSON are skipped). */
  jsonLogs(): Array<Record<string, unknown>>;
  /** SIGKILL, without any cleanup: the socket file is left behind as it would be after a crash. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for exit (SIGKILL after 20 s). Resolves with how the process ended. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Starts the daemon again with the same config and state (after stop() or kill9(), or a live restart). */
  restart(): Promise<void>;
  /** Raw `POST /<method>` over the plugin socket, as dockerd would send it (no Content-Type). */
  request(method: string, body?: unknown, opts?: { headers?: Record<string, string>; timeoutMs?: number }): Promise<PluginResponse>;
  /**
   * Stops the daemon if it runs, unmounts and detaches what it left, removes the run's folder and
   * its socket in /run/docker/plugins (also after kill9()).
   */
  cleanup(): Promise<void>;
  logTail(lines?: number): string;
}

/** A plugin name no other run on this machine uses: /run/docker/plugins is shared by every dockerd. */
export function uniquePluginName(prefix = 'netvol-e2e'): string {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

/** `POST /<method>` over a unix socket, written the way dockerd 20.10 writes it. */
export function pluginRequest(
  socket: string,
  method: string,
  body?: unknown,
  opts: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<PluginResponse> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        method: 'POST',
        path: `/${method}`,
        headers: {
          Host: '',
          Accept: 'application/vnd.docker.plugins.v1.2+json',
          'Content-Length': Buffer.byteLength(payload),
          ...(opts.headers ?? {}),
        },
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (raw += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(raw);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, raw, headers: res.headers });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST /${method} on ${socket} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export async function startNetvol(opts: StartNetvolOptions = {}): Promise<Netvol> {
  if (!fs.existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` first`);
  fs.mkdirSync(PLUGIN_DIR, { recursive: true });
  // Processes that started before the run's folder existed cannot be its helpers.
  const since = Date.now();
  const root = fs.mkdtempSync('/tmp/nvn-');
  const pluginName = uniquePluginName();
  const socket = path.join(PLUGIN_DIR, `${pluginName}.sock`);
  const stateDir = opts.stateDir ?? path.join(root, 'state');
  const localPath = path.join(root, 'local');
  fs.mkdirSync(localPath, { recursive: true });
  const backends = opts.backends ?? { local: { type: 'local', path: localPath } };
  const config: Record<string, unknown> = {
    socket,
    stateDir,
    logLevel: 'debug',
    defaultBackend: Object.keys(backends)[0],
    hostId: `e2e-${pluginName}`,
    // Test daemons never talk to a dockerd they did not start (a test passes its own when it wants one).
    dockerHost: '',
    backends,
    ...(opts.extraConfig ?? {}),
  };
  // JSON is valid YAML, so the file reads the same whichever parser the daemon picks.
  const configPath = path.join(root, 'netvol.yaml');
  fs.writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  const logFile = path.join(root, 'netvol.log');
  const logs: string[] = [];
  let child: ChildProcess | undefined;
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  let cleaned = false;

  const logTail = (lines = 40): string => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no netvol log)';
    }
  };

  /**
   * The socket is the one thing of a run outside its folder, in the directory every dockerd on the
   * machine scans: a dead one makes each `docker volume ls` retry it for ~15 s. Whatever ended the
   * daemon (stop, kill -9, a failed start), the run removes it, and only its own.
   */
  const removeSocket = (): void => {
    try {
      if (fs.lstatSync(socket).isSocket()) fs.unlinkSync(socket);
    } catch {
      /* removed by the daemon, as it should be */
    }
  };

  /** If jest exits with the daemon still running: kill it and take its socket away. */
  const killSync = (): void => {
    if (child?.pid && isAlive(child.pid)) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    removeSocket();
  };
  process.on('exit', killSync);

  const launch = async (): Promise<void> => {
    const log = fs.createWriteStream(logFile, { flags: 'a' });
    log.write(`--- harness: starting ${MAIN_JS} --config ${configPath} at ${new Date().toISOString()}\n`);
    const c = spawn(process.execPath, [MAIN_JS, '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_ENV: 'test' },
    });
    child = c;
    let partial = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => {
      log.write(d);
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      logs.push(...lines);
    });
    c.stderr!.setEncoding('utf8').on('data', (d: string) => log.write(`[stderr] ${d}`));
    exit = new Promise((resolve) =>
      c.on('exit', (code, signal) => {
        if (partial) logs.push(partial);
        partial = '';
        log.write(`--- harness: daemon exited (${code ?? signal})\n`);
        log.end();
        resolve({ code, signal });
      }),
    );
    let exited: string | undefined;
    void exit.then((e) => (exited = `netvol exited (${e.code ?? e.signal}) before answering`));
    await waitFor(
      `netvol to answer Plugin.Activate on ${socket}`,
      async () => {
        if (exited) throw new Error(exited);
        if (!fs.existsSync(socket)) return undefined;
        const r = await pluginRequest(socket, 'Plugin.Activate', undefined, { timeoutMs: 2000 });
        return r.status === 200 && Array.isArray(r.json?.Implements) ? true : undefined;
      },
      opts.startTimeoutMs ?? 30_000,
      100,
    ).catch(async (err: Error) => {
      await terminate(c.pid, 5000);
      throw new Error(`${err.message}\n--- netvol log ---\n${logTail()}`);
    });
  };

  const stop = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (!child || !exit) return { code: null, signal: null };
    const ended = exit;
    await terminate(child.pid, 20_000);
    child = undefined;
    return ended;
  };

  try {
    await launch();
  } catch (err) {
    process.removeListener('exit', killSync);
    killAllMentioning(root, { startedAfterMs: since });
    removeSocket();
    removeTree(root);
    throw err;
  }

  return {
    pluginName,
    socket,
    root,
    stateDir,
    configPath,
    config,
    localPath,
    logs,
    logFile,
    get pid() {
      return child?.pid;
    },
    jsonLogs() {
      const out: Array<Record<string, unknown>> = [];
      for (const l of logs) {
        try {
          const v = JSON.parse(l) as unknown;
          if (v && typeof v === 'object') out.push(v as Record<string, unknown>);
        } catch {
          /* not JSON */
        }
      }
      return out;
    },
    async kill9() {
      if (!child || !exit) return;
      const ended = exit;
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      await settleWithin(ended, 10_000);
      child = undefined;
    },
    stop,
    async restart() {
      if (cleaned) throw new Error('netvol run was cleaned up');
      if (child) await stop();
      await launch();
    },
    request(method, body, o) {
      return pluginRequest(socket, method, body, o);
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await stop();
      process.removeListener('exit', killSync);
      // Helpers the daemon started in their own session (none for local, sshfs for others) name the run's folder.
      killAllMentioning(root, { startedAfterMs: since });
      removeSocket();
      removeTree(root);
    },
    logTail,
  };
}
