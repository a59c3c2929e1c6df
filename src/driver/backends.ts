import path from 'node:path';
import { Backend, backendType } from '../backends';
import type { Config } from '../config';
import type { Logger } from '../log';

/** One backend instance per configured backend, each with its private work folder under stateDir. Not opened yet. */
export function buildBackends(config: Config, logger: Logger): Map<string, Backend> {
  const out = new Map<string, Backend>();
  for (const b of config.backends) {
    const kind = backendType(b.type);
    if (!kind) continue; // buildConfig already refused unknown types
    out.set(
      b.name,
      kind.create(b.options, {
        name: b.name,
        hostId: config.hostId,
        workDir: path.join(config.stateDir, 'backends', b.name),
        timeoutMs: config.timeoutMs,
        logger: logger.child({ backend: b.name }),
      }),
    );
  }
  return out;
}
