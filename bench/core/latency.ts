/**
 * Request latency over the plugin socket: Get, and a counted Mount of a volume that is already
 * attached (the path `docker run` takes for a volume another container holds). Plugin.Activate,
 * which touches no volume, is the baseline: it is the floor of the socket + HTTP + JSON path, so
 * the ratio is what the driver adds. Requests are sequential on one keep-alive connection, like
 * dockerd's, and the three kinds run in alternating blocks so load drift falls on all of them.
 */
import os from 'node:os';
import { BenchDaemon } from '../lib/daemon';
import { elapsedMs, interleaved, percentile } from '../lib/stats';
import { BenchContext, Row } from '../lib/types';

const VOLUME = 'bench-latency';
/** Holds the volume attached for the whole measurement, so no timed Mount attaches it. */
const HOLD_ID = 'bench-hold';
const COUNTED_ID = 'bench-counted';
const BLOCK = 250;
const P99_TARGET_MS = 2;

type Kind = 'activate' | 'get' | 'mount';

export async function measureLatency(ctx: BenchContext, daemon: BenchDaemon): Promise<Row[]> {
  const n = ctx.quick ? 500 : 5000;
  const c = daemon.client;
  await c.call('VolumeDriver.Create', { Name: VOLUME, Opts: { size: '64M' } });
  let counted = 0;
  let held = false;
  // If anything below fails, give back what we took, so the volume can be removed.
  ctx.defer(async () => {
    for (; counted > 0; counted--) await c.request('VolumeDriver.Unmount', { Name: VOLUME, ID: COUNTED_ID }).catch(() => undefined);
    if (held) await c.request('VolumeDriver.Unmount', { Name: VOLUME, ID: HOLD_ID }).catch(() => undefined);
    await c.request('VolumeDriver.Remove', { Name: VOLUME }).catch(() => undefined);
  });
  await c.call('VolumeDriver.Mount', { Name: VOLUME, ID: HOLD_ID });
  held = true;

  const send: Record<Kind, () => Promise<void>> = {
    activate: async () => {
      const a = await c.request('Plugin.Activate');
      if (!Array.isArray(a.json?.Implements)) throw new Error(`Plugin.Activate answered ${JSON.stringify(a.json)}`);
    },
    get: async () => {
      await c.call('VolumeDriver.Get', { Name: VOLUME });
    },
    mount: async () => {
      await c.call('VolumeDriver.Mount', { Name: VOLUME, ID: COUNTED_ID });
      counted++;
    },
  };
  const samples: Record<Kind, number[]> = { activate: [], get: [], mount: [] };

  // Warm-up (JIT, connection, caches); not recorded.
  for (const kind of ['activate', 'get', 'mount'] as const) for (let i = 0; i < 100; i++) await send[kind]();

  const blocks = Math.ceil(n / BLOCK);
  for (let b = 0; b < blocks; b++) {
    const order = interleaved<Kind>(b % 4 < 2 ? ['activate', 'get', 'mount'] : ['mount', 'activate', 'get'], b);
    for (const kind of order) {
      const count = Math.min(BLOCK, n - b * BLOCK);
      for (let i = 0; i < count; i++) {
        const t = process.hrtime.bigint();
        await send[kind]();
        samples[kind].push(elapsedMs(t));
      }
    }
    if ((b + 1) % 4 === 0 || b === blocks - 1) ctx.log(`latency: ${Math.min(n, (b + 1) * BLOCK)}/${n} of each request kind`);
  }

  // Balance every counted Mount; these are timed too (information only).
  const unmounts: number[] = [];
  while (counted > 0) {
    const t = process.hrtime.bigint();
    await c.call('VolumeDriver.Unmount', { Name: VOLUME, ID: COUNTED_ID });
    unmounts.push(elapsedMs(t));
    counted--;
  }
  await c.call('VolumeDriver.Unmount', { Name: VOLUME, ID: HOLD_ID });
  held = false;
  const after = await c.call('VolumeDriver.Get', { Name: VOLUME });
  const left: unknown = after.Volume?.Status?.mountCount;
  if (left !== 0) throw new Error(`after balancing every Mount, ${VOLUME} still reports mountCount ${JSON.stringify(left)}`);
  await c.call('VolumeDriver.Remove', { Name: VOLUME });

  const p = (kind: Kind, q: number) => percentile(samples[kind], q);
  const p99 = (kind: Kind) => p(kind, 99);
  const floor = p99('activate');
  if (floor >= P99_TARGET_MS / 2) {
    ctx.note(
      `Plugin.Activate, which does no driver work, has p99 ${floor.toFixed(3)} ms (load average ${os.loadavg()[0].toFixed(2)} ` +
        `on ${os.cpus().length} CPUs): tail latency in this run is mostly the machine's scheduling; compare the p50 rows, or rerun on a quiet machine`,
    );
  }
  const ms = (value: number, label?: string) => ({ value, unit: 'ms', digits: 3, ...(label ? { label } : {}) });
  const target = { on: 'netvol', op: '<', value: P99_TARGET_MS } as const;
  return [
    { metric: `Get p50 (${n} sequential, keep-alive)`, netvol: ms(p('get', 50)), baseline: ms(p('activate', 50), 'Activate') },
    { metric: 'Get p99', netvol: ms(p('get', 99)), baseline: ms(p('activate', 99), 'Activate'), target },
    { metric: `Mount p50 (counted, volume attached)`, netvol: ms(p('mount', 50)), baseline: ms(p('activate', 50), 'Activate') },
    { metric: 'Mount p99', netvol: ms(p('mount', 99)), baseline: ms(p('activate', 99), 'Activate'), target },
    { metric: 'Unmount p99 (balancing the Mounts)', netvol: ms(percentile(unmounts, 99)), baseline: ms(p('activate', 99), 'Activate') },
  ];
}
