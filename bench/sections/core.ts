/**
 * The core daemon against its baselines (issue 2): protocol latency, `docker run` cost, and
 * sequential I/O through an image volume. One daemon with the built-in local backend serves all
 * three parts; a part that fails becomes an ERROR row and the others still run.
 */
import { measureDockerRun } from '../core/docker-run';
import { measureImageIo } from '../core/image-io';
import { measureLatency } from '../core/latency';
import { BenchDaemon } from '../lib/daemon';
import { BenchContext, Row, Section } from '../lib/types';

type Part = (ctx: BenchContext, daemon: BenchDaemon) => Promise<Row[]>;

const PARTS: Array<[string, Part]> = [
  ['request latency', measureLatency],
  ['docker run', measureDockerRun],
  ['sequential I/O', measureImageIo],
];

export const section: Section = {
  name: 'core',
  description: 'local backend: socket latency, docker run vs the local driver, image volume I/O vs the raw disk',
  async run(ctx) {
    const daemon = await ctx.startNetvol();
    const rows: Row[] = [];
    for (const [name, part] of PARTS) {
      try {
        rows.push(...(await part(ctx, daemon)));
      } catch (err) {
        ctx.log(`${name} failed: ${(err as Error).stack ?? String(err)}\n--- netvol log ---\n${daemon.logTail()}`);
        rows.push({ metric: name, error: (err as Error).message });
      }
    }
    return rows;
  },
};
