/**
 * `docker run --rm -v VOL:/d busybox:local true` with a netvol volume against Docker's built-in
 * `local` driver, through a real dockerd. Runs are interleaved (netvol, local, local, netvol…) and
 * the medians compared. A netvol image volume is timed alongside, as information: each run
 * attaches a loop device and mounts ext4, then undoes it.
 */
import { BUSYBOX_IMAGE } from '../../test/harness/dockerd';
import { BenchDaemon } from '../lib/daemon';
import { elapsedMs, interleaved, median, percentile } from '../lib/stats';
import { BenchContext, Row } from '../lib/types';

const RATIO_TARGET = 1.1;

interface Variant {
  key: 'netvol' | 'image' | 'local';
  volume: string;
  samples: number[];
}

export async function measureDockerRun(ctx: BenchContext, daemon: BenchDaemon): Promise<Row[]> {
  const runs = ctx.quick ? 5 : 20;
  const d = await ctx.dockerd();
  const variants: Variant[] = [
    { key: 'netvol', volume: 'bench-run-netvol', samples: [] },
    { key: 'local', volume: 'bench-run-local', samples: [] },
    { key: 'image', volume: 'bench-run-image', samples: [] },
  ];
  ctx.defer(async () => {
    for (const v of variants) await d.docker(['volume', 'rm', '-f', v.volume]).catch(() => undefined);
  });
  await d.dockerOk(['volume', 'create', '-d', daemon.pluginName, 'bench-run-netvol']);
  await d.dockerOk(['volume', 'create', '-d', daemon.pluginName, '-o', 'size=256M', 'bench-run-image']);
  await d.dockerOk(['volume', 'create', '-d', 'local', 'bench-run-local']);

  const once = async (v: Variant): Promise<number> => {
    const t = process.hrtime.bigint();
    const r = await d.runContainer(['--rm', '-v', `${v.volume}:/d`, BUSYBOX_IMAGE, 'true']);
    const ms = elapsedMs(t);
    if (r.code !== 0) throw new Error(`docker run with ${v.volume} exited ${r.code}: ${r.stderr.trim()}`);
    return ms;
  };
  // Warm-up: the first runs pay for page cache and dockerd's first plugin lookup.
  for (const v of variants) for (let i = 0; i < 2; i++) await once(v);
  for (let i = 0; i < runs; i++) {
    for (const v of interleaved(variants, i)) v.samples.push(await once(v));
    if ((i + 1) % 5 === 0 || i === runs - 1) ctx.log(`docker run: ${i + 1}/${runs} of each volume kind`);
  }

  const s = (v: Variant, label?: string) => ({ value: median(v.samples) / 1000, unit: 's', digits: 3, ...(label ? { label } : {}) });
  const [netvol, local, image] = variants;
  const spread = (v: Variant) => [percentile(v.samples, 25), median(v.samples), percentile(v.samples, 75)].map((x) => (x / 1000).toFixed(3)).join(' / ');
  // Each round ran every kind back to back, so a per-round ratio cancels load that drifts between rounds.
  const paired = median(netvol.samples.map((x, i) => x / local.samples[i]));
  ctx.note(
    `docker run seconds, p25 / median / p75 — netvol directory ${spread(netvol)}; local driver ${spread(local)}; netvol image ${spread(image)}; ` +
      `median of the ${runs} per-round ratios directory/local ${paired.toFixed(2)}`,
  );
  return [
    {
      metric: `docker run --rm -v VOL:/d busybox true, median of ${runs}`,
      netvol: s(netvol, 'directory'),
      baseline: s(local, 'local driver'),
      target: { on: 'ratio', op: '<', value: RATIO_TARGET },
    },
    { metric: 'same, netvol image volume (size=256M)', netvol: s(image, 'image'), baseline: s(local, 'local driver') },
  ];
}
