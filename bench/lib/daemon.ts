/**
 * Starts the real daemon (`node dist/main.js --config FILE`) for a benchmark, as dockerd sees it: a
 * legacy plugin socket under /run/docker/plugins with a unique name. It differs from the e2e
 * harness's startNetvol in what a measurement needs: it runs from any compiled location (the repo
 * root is given, not derived from this file's path), logs at `warn` so request logging does not sit
 * in the timed path, and keeps mounts below one folder that cleanup unmounts.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isAlive, killAllMentioning, removeTree, terminate, waitFor } from '../../test/harness/dockerd';
import { PLUGIN_DIR, uniquePluginName } from '../../test/harness/netvol';
import { PluginClient } from './client';

export interface StartDaemonOptions {
  /** Backends by name; default one local backend `local` under the daemon's folder. */
  backends?: Record<string, { type: string; [key: string]: unknown }>;
  /** Merged over the generated config. */
  extraConfig?: Record<string, unknown>;
  /** Default `warn`: `debug` logs every request, which is then part of what is timed. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

export interface BenchDaemon {
  /** The driver name for `docker volume create -d`. */
  readonly pluginName: string;
  readonly socket: string;
  /** The daemon's private folder (config, state, mounts, the default local backend). */
  readonly root: string;
  /** The default local backend's folder: volumes live here, on the host filesystem. */
  readonly localPath: string;
  /** A keep-alive protocol client on the daemon's socket. */
  readonly client: PluginClient;
  logTail(lines?: number): string;
  /** SIGTERM, then unmount and detach whatever is left below the daemon's folder, and remove it. */
  stop(): Promise<void>;
}

export async function startBenchDaemon(repoRoot: string, opts: StartDaemonOptions = {}): Promise<BenchDaemon> {
  const mainJs = path.join(repoRoot, 'dist', 'main.js');
  if (!fs.existsSync(mainJs)) throw new Error(`dist/main.js is missing: run \`npm run build\` first`);
  fs.mkdirSync(PLUGIN_DIR, { recursive: true });
  const root = fs.mkdtempSync('/tmp/nvb-');
  const pluginName = uniquePluginName('netvol-bench');
  const socket = path.join(PLUGIN_DIR, `${pluginName}.sock`);
  const localPath = path.join(root, 'local');
  fs.mkdirSync(localPath);
  const backends = opts.backends ?? { local: { type: 'local', path: localPath } };
  const config = {
    socket,
    stateDir: path.join(root, 'state'),
    mountRoot: path.join(root, 'mounts'),
    logLevel: opts.logLevel ?? 'warn',
    defaultBackend: Object.keys(backends)[0],
    hostId: pluginName,
    backends,
    ...(opts.extraConfig ?? {}),
  };
  const configPath = path.join(root, 'netvol.json');
  fs.writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  const logFile = path.join(root, 'netvol.log');
  const out = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath, [mainJs, '--config', configPath], {
    cwd: repoRoot,
    stdio: ['ignore', out, out],
    env: { ...process.env, NETVOL_LOG_LEVEL: config.logLevel },
  });
  fs.closeSync(out);
  const killSync = (): void => {
    if (isAlive(child.pid)) child.kill('SIGKILL');
  };
  process.on('exit', killSync);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = `netvol exited (${code ?? signal})`));
  const client = new PluginClient(socket);
  const logTail = (lines = 30): string => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no netvol log)';
    }
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    client.close();
    await terminate(child.pid, 20_000);
    process.removeListener('exit', killSync);
    killAllMentioning(root);
    fs.rmSync(socket, { force: true });
    removeTree(root);
  };

  try {
    await waitFor(
      `netvol to answer Plugin.Activate on ${socket}`,
      async () => {
        if (exited) throw new Error(exited);
        if (!fs.existsSync(socket)) return undefined;
        const a = await client.request('Plugin.Activate', undefined, 2000);
        return Array.isArray(a.json?.Implements) ? true : undefined;
      },
      30_000,
      100,
    );
  } catch (err) {
    const tail = logTail();
    await stop();
    throw new Error(`${(err as Error).message}\n--- netvol log ---\n${tail}`);
  }
  return { pluginName, socket, root, localPath, client, logTail, stop };
}
