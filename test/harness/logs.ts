import { PassThrough } from 'node:stream';
import { createLogger } from '../../src/log';

/** A debug logger whose JSON lines land in `logs`, for tests that check what was logged (and what was not). */
export function capturingLogger(): { logger: ReturnType<typeof createLogger>; logs: string[] } {
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.setEncoding('utf8').on('data', (d: string) => logs.push(...d.split('\n').filter(Boolean)));
  return { logger: createLogger('debug', stream), logs };
}
