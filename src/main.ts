#!/usr/bin/env node
import path from 'node:path';
import { Command } from 'commander';
import { createAdminApp } from './admin';
import { loadConfig } from './config';
import { buildBackends, openLedger, startCaretakers, stopCaretakers, VolumeDriver } from './driver';
import { isNetvolError } from './errors';
import { createLogger, logTimings } from './log';
import { Metrics } from './metrics';
import { announceToDocker, createApp, listenOnSocket, pluginNameOf, releaseMountsDockerdForgot } from './plugin';
import { listenOnSocket as listenOnUnixSocket, logCommandsTo, SocketServer } from './system';

const VERSION: string = (require('../package.json') as { version: string }).version;

/** config → logger → metrics bound → caretakers ended → state restore → socket listen → background remount and reconcile with dockerd; on stop, caretakers started. */
async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('netvol')
    .description('Docker volume plugin for networked storage (local, SFTP and NFS backends, hard quotas)')
    .version(VERSION)
    .option('-c, --config <file>', 'daemon configuration file, YAML or JSON (env NETVOL_CONFIG); without one the built-in local default is used')
    .parse(argv);
  const file = (program.opts().config as string | undefined) ?? process.env.NETVOL_CONFIG;

  const config = await loadConfig(file);
  const logger = createLogger(config.logLevel);
  logCommandsTo(logger); // helper commands (mkfs, losetup, mount, sshfs...) with their argv, at debug
  logTimings(logger); // each operation's duration and result, at debug (the metrics subscribe to the same timings)
  // Bound before anything else is touched: a bad or busy metrics.listen refuses the start (exit 2).
  const metrics = config.metrics ? await Metrics.start({ ...config.metrics, hostId: config.hostId, log: logger }) : undefined;
  const backends = buildBackends(config, logger);
  // A caretaker kept this host's heartbeats while the daemon was stopped: this daemon takes over.
  await stopCaretakers(config.stateDir, logger);
  const store = await openLedger(path.join(config.stateDir, 'state.json'), (msg) => logger.error(msg));
  const driver = new VolumeDriver(config, backends, store, logger);
  await driver.restore();

  // The signal handlers are in place before the socket exists: a stop that comes as soon as the
  // socket answers (or while it is being made) still closes it and hands over to the caretakers.
  const listening = listenOnSocket(config.socket, createApp(driver, logger));
  // The admin socket (netvolctl): root only. Its failure to listen is logged, not fatal: Docker's verbs still work.
  const adminListening: Promise<SocketServer | undefined> = config.adminSocket
    ? listenOnUnixSocket(config.adminSocket, createAdminApp(driver.operations, logger), 0o600, 'adminSocket in the config (or NETVOL_ADMIN_SOCKET)', true).catch((err: Error) => {
        logger.error('cannot listen on the admin socket; netvolctl cannot reach this daemon', { socket: config.adminSocket, error: err.message });
        return undefined;
      })
    : Promise.resolve(undefined);
  let announcement: { stop(): void } | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    announcement?.stop();
    logger.info('netvol stopping; mounted volumes stay mounted', { signal });
    await listening.then((s) => s.close()).catch(() => undefined);
    await adminListening.then((s) => s?.close()).catch(() => undefined);
    await metrics?.close().catch(() => undefined);
    await startCaretakers(config.stateDir, file, await driver.close(), logger);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  await listening;
  if (stopping) return;
  logger.info('netvol listening', {
    version: VERSION,
    socket: config.socket,
    adminSocket: config.adminSocket || undefined,
    scope: driver.scope,
    backends: config.backends.map((b) => `${b.name}(${b.type})`),
    volumes: Object.keys(store.data.volumes).length,
  });
  void driver.remountAll();
  // Volumes measured in the background from now on (a scrape before the first sweep shows mount counts only).
  metrics?.attach(driver.operations);
  // Mount IDs whose containers ended while netvol was down (dockerd forgot them): released if dockerd says so.
  void releaseMountsDockerdForgot({ dockerHost: config.dockerHost, driver, logger });
  // A legacy plugin is reported to swarm only once its dockerd has used it: use it now.
  announcement = announceToDocker({ dockerHost: config.dockerHost, pluginName: pluginNameOf(config.socket), logger });
}

main(process.argv).catch((err: unknown) => {
  const text = isNetvolError(err) ? err.message : `netvol failed to start: ${(err as Error)?.message ?? String(err)}`;
  process.stderr.write(`netvol: ${text}\n`);
  process.exit(isNetvolError(err, 'CONFIG') ? 2 : 1);
});
