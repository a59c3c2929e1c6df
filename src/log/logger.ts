import winston from 'winston';
import { redact } from '../errors';

export type Logger = winston.Logger;

/** A winston format that scrubs secrets from every record, so no call site has to remember to. */
const redactFormat = winston.format((info) => {
  const scrubbed = redact({ ...info }) as Record<string, unknown>;
  for (const key of Object.keys(scrubbed)) (info as Record<string, unknown>)[key] = scrubbed[key];
  return info;
});

/** JSON lines on stdout; child loggers add {volume, op, mountId}. */
export function createLogger(level: string, stream?: NodeJS.WritableStream): Logger {
  const transport = stream
    ? new winston.transports.Stream({ stream })
    : new winston.transports.Console();
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), redactFormat(), winston.format.json()),
    defaultMeta: { service: 'netvol' },
    transports: [transport],
  });
}
