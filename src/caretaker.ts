#!/usr/bin/env node
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { loadConfig } from './config';
import { buildBackends, Presence, stopDataPath } from './driver';
import { isNetvolError } from './errors';
import { createLogger } from './log';
import { keyedSchema } from './state';
import { withTimeout } from './system';

const handoverSchema = z.object({
  backend: z.string(),
  holds: keyedSchema(z.enum(['shared', 'claim', 'exclusive'])),
  lastGoodStart: z.number().optional(),
});

/**
 * The caretaker (see driver/caretaker.ts): keeps one backend's heartbeat with the stopped daemon's
 * holds, fences its image volumes if it cannot renew in time, and exits on SIGTERM from the next
 * daemon without writing anything.
 */
async function main(argv: string[]): Promise<void> {
  const opts = new Command()
    .name('netvol-caretaker')
    .requiredOption('--backend <name>')
    .requiredOption('--handover <file>')
    .option('--config <file>')
    .parse(argv)
    .opts<{ backend: string; handover: string; config?: string }>();
  const config = await loadConfig(opts.config ?? process.env.NETVOL_CONFIG);
  const log = createLogger(config.logLevel).child({ caretaker: true, backend: opts.backend });
  const handover = handoverSchema.parse(JSON.parse(await fs.readFile(opts.handover, 'utf8')));
  const backend = buildBackends(config, log).get(opts.backend);
  const settings = config.backends.find((b) => b.name === opts.backend);
  if (!backend || !settings) throw new Error(`backend ${opts.backend} is not in the config`);

  const presence = new Presence({
    backend,
    hostId: config.hostId,
    leaseSeconds: settings.leaseSeconds,
    timeoutMs: config.timeoutMs,
    log,
    resume: handover,
    onLost: async (volumes) => {
      for (const name of volumes) {
        await stopDataPath(backend, name, path.join(config.mountRoot, name), config.timeoutMs, log);
        log.error('fenced volume while netvol was stopped', { volume: name });
      }
    },
  });
  const keepAlive = setInterval(() => undefined, 1 << 30);
  // The next daemon takes over at once: stop beating and go, writing nothing (the control connection dies with the process).
  const stop = () => {
    presence.stop();
    clearInterval(keepAlive);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log.info('caretaker keeps this host\'s heartbeat while netvol is stopped', { volumes: Object.keys(handover.holds) });
  // The fence deadline runs from the daemon's last good beat even while the backend cannot be opened.
  void presence.start().catch(() => undefined);
  for (let opened = false; !opened; ) {
    try {
      await withTimeout(backend.open(), config.timeoutMs, `opening backend ${opts.backend}`);
      opened = true;
    } catch (err) {
      log.warn('caretaker cannot open the backend yet; retrying', { error: (err as Error).message });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`netvol caretaker: ${isNetvolError(err) ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
