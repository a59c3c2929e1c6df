import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Registry } from 'prom-client';

const gzip = promisify(zlib.gzip);

/**
 * One registry's formatted text, encoded once and gzip-compressed once when first asked (zlib runs
 * off the event loop). A scrape sends blocks one after another: plain texts concatenate into one
 * exposition, and gzip members concatenate into one valid gzip stream (RFC 1952 §2.2, which
 * Prometheus' Go client reads as one body), so an unchanged block costs nothing to send again.
 */
export class Block {
  readonly raw: Buffer;
  private compressed?: Promise<Buffer>;

  constructor(text: string) {
    this.raw = Buffer.from(text, 'utf8');
  }

  gzipped(): Promise<Buffer> {
    this.compressed ??= gzip(this.raw, { level: 6 });
    return this.compressed;
  }
}

export const EMPTY_BLOCK = new Block('');

/**
 * Formats a registry into a block, one metric family per turn of the event loop: a family of
 * thousands of volumes is formatted in one go by prom-client, but the daemon serves Docker's
 * requests between families rather than after all of them.
 */
export async function formatBlock(registry: Registry): Promise<Block> {
  const families: string[] = [];
  for (const metric of registry.getMetricsAsArray()) {
    families.push(await registry.getSingleMetricAsString(metric.name));
    await new Promise((r) => setImmediate(r));
  }
  return new Block(families.length > 0 ? `${families.join('\n\n')}\n` : '');
}
