import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import { buildConfig } from '../../src/config';
import type { StatsApi, StatsSweep, VolumeRef } from '../../src/driver';
import { isNetvolError, NetvolError } from '../../src/errors';
import { createLogger, OperationTiming, OperationTimings, timed } from '../../src/log';
import { Metrics, NetvolMetrics, parseListen, recordBackupSuccess, serveMetrics, StatsSampler } from '../../src/metrics';

/**
 * The metrics without a daemon: the listen address rule, the registry over a fake source (what a
 * scrape shows, and that a scrape never measures anything), the background sampler, the observer,
 * and the HTTP server bound to exactly the configured address.
 */
const quiet = createLogger('error');

/** A StatsApi whose answers the test sets, counting the calls. */
class FakeSource implements StatsApi {
  sweeps = 0;
  factsCalls = 0;
  sweep: StatsSweep = { volumes: [], backends: [] };
  here: VolumeRef[] = [];
  mounts = new Map<string, number>();
  leases = new Map<string, boolean>();
  async sweepStats(): Promise<StatsSweep> {
    this.sweeps++;
    return this.sweep;
  }
  volumesHere(): VolumeRef[] {
    return this.here;
  }
  hostFacts(ref: VolumeRef): { mounts: number; leaseHeld?: boolean } {
    this.factsCalls++;
    return { mounts: this.mounts.get(ref.name) ?? 0, leaseHeld: this.leases.get(ref.name) };
  }
}

/** The value of one series in a scrape, by its label set in any order, e.g. `name{a="1",b="2"}` (undefined when absent). */
function value(text: string, series: string): number | undefined {
  const key = (s: string) => {
    const m = /^([^{ ]+)(?:\{(.*)\})?$/.exec(s) as RegExpExecArray;
    return `${m[1]}|${(m[2] ?? '').split(/,(?=[a-z_]+=")/).filter(Boolean).sort().join(',')}`;
  };
  const want = key(series);
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const at = line.lastIndexOf(' ');
    if (key(line.slice(0, at)) === want) return Number(line.slice(at + 1));
  }
  return undefined;
}

function get(port: number, path: string, method = 'GET', host = '127.0.0.1', headers: Record<string, string> = {}): Promise<{ status: number; type?: string; encoding?: string; text: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .request({ host, port, path, method, agent: false, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], encoding: res.headers['content-encoding'], text: body.toString('utf8'), body });
        });
      })
      .on('error', reject)
      .end();
  });
}

describe('metrics.listen', () => {
  it.each([
    ['127.0.0.1:9911', '127.0.0.1', 9911],
    ['0.0.0.0:80', '0.0.0.0', 80],
    ['[::1]:9911', '::1', 9911],
  ])('accepts %s', (text, host, port) => {
    expect(parseListen(text)).toEqual({ host, port, text });
  });

  it.each([
    ['localhost:9911', '"localhost" is not an IP address'],
    ['metrics.example:9911', 'host names are refused'],
    ['127.0.0.1:0', 'port 0 is outside 1-65535'],
    ['127.0.0.1:70000', 'port 70000 is outside 1-65535'],
    ['::1:9911', 'it is not host:port'],
    ['127.0.0.1', 'it is not host:port'],
    ['999.1.1.1:9911', 'not an IP address'],
  ])('refuses %s, naming it and saying what to write', (text, why) => {
    let err: unknown;
    try {
      parseListen(text);
    } catch (e) {
      err = e;
    }
    expect(isNetvolError(err, 'CONFIG')).toBe(true);
    expect((err as Error).message).toContain(`metrics.listen "${text}"`);
    expect((err as Error).message).toContain(why);
    expect((err as Error).message).toContain('e.g. 127.0.0.1:9911');
  });
});

describe('the metrics block of the daemon config', () => {
  it('is off by default; when set, sweeps every 60 s unless intervalSeconds says otherwise', () => {
    expect(buildConfig({}, 'c', {}).metrics).toBeUndefined();
    expect(buildConfig({ metrics: { listen: '127.0.0.1:9911' } }, 'c', {}).metrics).toEqual({ listen: '127.0.0.1:9911', intervalSeconds: 60 });
    expect(buildConfig({ metrics: { listen: '127.0.0.1:9911', intervalSeconds: 15 } }, 'c', {}).metrics).toEqual({ listen: '127.0.0.1:9911', intervalSeconds: 15 });
  });

  it.each([
    [{ listen: '127.0.0.1:9911', intervalSeconds: 1 }, 'intervalSeconds'],
    [{ listen: '127.0.0.1:9911', port: 9911 }, 'port'],
    [{ listen: '9911' }, 'listen'],
  ])('refuses %j, naming the key', (metrics, key) => {
    expect(() => buildConfig({ metrics }, 'c', {})).toThrow(key);
  });
});

describe('the registry', () => {
  const sweep: StatsSweep = {
    volumes: [
      { name: 'img', backend: 'local', layout: 'image', capacityBytes: 1000, usedBytes: 300, availableBytes: 700, inodes: 64, inodesFree: 60, healthy: true },
      { name: 'dir', backend: 'remote', layout: 'directory', capacityBytes: 50, usedBytes: 20, availableBytes: 30 },
      { name: 'broken', backend: 'remote', layout: 'image', healthy: false, error: 'volume broken: timed out' },
    ],
    backends: [
      { name: 'local', up: true },
      { name: 'remote', up: false, error: 'connection refused' },
    ],
  };

  it('shows the last sweep\'s values with volume, backend and host labels, and its time as the staleness', async () => {
    const m = new NetvolMetrics('h1');
    const src = new FakeSource();
    m.attach(src);
    await m.applySweep(sweep, new Date(1_700_000_000_000), 2.5);
    const text = await m.scrape();
    expect(value(text, 'netvol_volume_capacity_bytes{volume="img",backend="local",host="h1"}')).toBe(1000);
    expect(value(text, 'netvol_volume_used_bytes{volume="img",backend="local",host="h1"}')).toBe(300);
    expect(value(text, 'netvol_volume_available_bytes{volume="dir",backend="remote",host="h1"}')).toBe(30);
    expect(value(text, 'netvol_volume_inodes{volume="img",backend="local",host="h1"}')).toBe(64);
    expect(value(text, 'netvol_volume_inodes_free{volume="img",backend="local",host="h1"}')).toBe(60);
    expect(value(text, 'netvol_volume_inodes{volume="dir",backend="remote",host="h1"}')).toBeUndefined();
    expect(value(text, 'netvol_volume_healthy{volume="img",backend="local",host="h1"}')).toBe(1);
    expect(value(text, 'netvol_volume_healthy{volume="broken",backend="remote",host="h1"}')).toBe(0);
    expect(value(text, 'netvol_volume_healthy{volume="dir",backend="remote",host="h1"}')).toBeUndefined();
    expect(value(text, 'netvol_volume_capacity_bytes{volume="broken",backend="remote",host="h1"}')).toBeUndefined();
    expect(value(text, 'netvol_backend_up{backend="local",host="h1"}')).toBe(1);
    expect(value(text, 'netvol_backend_up{backend="remote",host="h1"}')).toBe(0);
    expect(value(text, 'netvol_volume_stats_timestamp_seconds{host="h1"}')).toBe(1_700_000_000);
    expect(value(text, 'netvol_volume_stats_sweep_duration_seconds{host="h1"}')).toBe(2.5);
    expect(value(text, 'netvol_volume_stats_failures{host="h1"}')).toBe(1);
  });

  it('reads mount counts and leases again after each operation, also of volumes mounted here since the last sweep', async () => {
    const m = new NetvolMetrics('h1');
    const src = new FakeSource();
    m.attach(src);
    await m.applySweep(sweep, new Date(), 1);
    src.mounts.set('img', 2);
    src.leases.set('img', true);
    src.leases.set('broken', false);
    let text = await m.scrape();
    expect(value(text, 'netvol_volume_mounts{volume="img",backend="local",host="h1"}')).toBe(2);
    expect(value(text, 'netvol_volume_mounts{volume="dir",backend="remote",host="h1"}')).toBe(0);
    expect(value(text, 'netvol_lease_held{volume="img",backend="local",host="h1"}')).toBe(1);
    expect(value(text, 'netvol_lease_held{volume="broken",backend="remote",host="h1"}')).toBe(0);
    expect(value(text, 'netvol_lease_held{volume="dir",backend="remote",host="h1"}')).toBeUndefined();

    src.here = [{ name: 'fresh', backend: 'local', layout: 'directory' }];
    src.mounts.set('fresh', 1);
    src.mounts.set('img', 0);
    const calls = src.factsCalls;
    text = await m.scrape();
    expect(src.factsCalls).toBe(calls); // no operation since: the text formatted before is served
    expect(value(text, 'netvol_volume_mounts{volume="img",backend="local",host="h1"}')).toBe(2);
    m.observe({ operation: 'mount', volume: 'fresh', backend: 'local', durationSeconds: 0.01, result: 'ok' });
    text = await m.scrape();
    expect(value(text, 'netvol_volume_mounts{volume="fresh",backend="local",host="h1"}')).toBe(1);
    expect(value(text, 'netvol_volume_mounts{volume="img",backend="local",host="h1"}')).toBe(0);
    expect(value(text, 'netvol_volume_used_bytes{volume="fresh",backend="local",host="h1"}')).toBeUndefined();
  });

  it('never measures anything during a scrape, whatever the number of volumes', async () => {
    const m = new NetvolMetrics('h1');
    const src = new FakeSource();
    src.sweep = {
      volumes: Array.from({ length: 5000 }, (_, i) => ({ name: `v${i}`, backend: 'local', layout: 'image' as const, capacityBytes: 1, usedBytes: 1, availableBytes: 0 })),
      backends: [{ name: 'local', up: true }],
    };
    const sampler = new StatsSampler(src, m, { intervalMs: 3_600_000, concurrency: 4, log: quiet });
    m.attach(src);
    await sampler.sweepOnce();
    expect(src.sweeps).toBe(1);
    const text = await m.scrape();
    await m.scrape();
    expect(src.sweeps).toBe(1);
    expect(text.split('\n').filter((l) => l.startsWith('netvol_volume_capacity_bytes{')).length).toBe(5000);
    expect(text.split('\n').filter((l) => l.startsWith('netvol_volume_mounts{')).length).toBe(5000);
  });

  it('counts operation timings by operation, backend and result, without a volume label', async () => {
    const observer = new OperationTimings();
    const m = new NetvolMetrics('h1');
    observer.subscribe((t) => m.observe(t));
    await timed('mount', 'a', 'local', async () => undefined, observer);
    await timed('mount', 'b', 'local', async () => undefined, observer);
    await expect(timed('mount', 'c', 'local', async () => Promise.reject(new NetvolError('TIMEOUT', 'volume c: mount did not finish')), observer)).rejects.toThrow('did not finish');
    await expect(timed('remove', 'c', 'local', async () => Promise.reject(new Error('boom')), observer)).rejects.toThrow('boom');
    const text = await m.scrape();
    expect(value(text, 'netvol_operation_duration_seconds_count{operation="mount",backend="local",result="ok",host="h1"}')).toBe(2);
    expect(value(text, 'netvol_operation_duration_seconds_count{operation="mount",backend="local",result="TIMEOUT",host="h1"}')).toBe(1);
    expect(value(text, 'netvol_operation_duration_seconds_count{operation="remove",backend="local",result="INTERNAL",host="h1"}')).toBe(1);
    expect(value(text, 'netvol_operation_duration_seconds_bucket{le="+Inf",operation="mount",backend="local",result="ok",host="h1"}')).toBe(2);
    expect(text).not.toMatch(/netvol_operation_duration_seconds_count\{[^}]*volume=/);
  });

  it('drops a removed volume\'s series at once and sets the backup time from a backup timing or recordBackupSuccess', async () => {
    const m = new NetvolMetrics('h1');
    m.attach(new FakeSource());
    await m.applySweep({ volumes: [{ name: 'gone', backend: 'local', layout: 'directory', capacityBytes: 5, usedBytes: 1, availableBytes: 4 }], backends: [] }, new Date(), 1);
    const at = new Date('2026-12-01T10:00:00Z');
    recordBackupSuccess('kept', 'local', at);
    m.observe({ operation: 'backup', volume: 'gone', backend: 'local', durationSeconds: 3, result: 'ok' });
    let text = await m.scrape();
    expect(value(text, 'netvol_backup_last_success_timestamp_seconds{volume="kept",backend="local",host="h1"}')).toBe(at.getTime() / 1000);
    expect(value(text, 'netvol_backup_last_success_timestamp_seconds{volume="gone",backend="local",host="h1"}')).toBeGreaterThan(at.getTime() / 1000);
    m.observe({ operation: 'backup', volume: 'kept', backend: 'local', durationSeconds: 3, result: 'BACKEND_UNAVAILABLE' });
    m.observe({ operation: 'remove', volume: 'gone', backend: 'local', durationSeconds: 0.1, result: 'ok' });
    text = await m.scrape();
    expect(value(text, 'netvol_volume_capacity_bytes{volume="gone",backend="local",host="h1"}')).toBeUndefined();
    expect(value(text, 'netvol_backup_last_success_timestamp_seconds{volume="gone",backend="local",host="h1"}')).toBeUndefined();
    expect(value(text, 'netvol_backup_last_success_timestamp_seconds{volume="kept",backend="local",host="h1"}')).toBe(at.getTime() / 1000);
  });

  it('a gzip scrape is one gzip stream of the same text, and an unchanged block is compressed only once', async () => {
    const m = new NetvolMetrics('h1');
    m.attach(new FakeSource());
    await m.applySweep(sweep, new Date(), 1);
    m.observe({ operation: 'mount', volume: 'img', backend: 'local', durationSeconds: 0.2, result: 'ok' });
    const parts = await m.scrapeParts(true);
    expect(parts.length).toBe(3);
    expect(zlib.gunzipSync(Buffer.concat(parts)).toString('utf8')).toBe(await m.scrape());
    const again = await m.scrapeParts(true);
    expect(again[0]).toBe(parts[0]); // the sweep's block: the same buffer, not compressed again
    expect(again[1]).toBe(parts[1]); // no operation since: the same host block
  });

  it('an observer whose subscriber throws still lets the operation finish and the other subscribers see it', async () => {
    const observer = new OperationTimings();
    const seen: OperationTiming[] = [];
    observer.subscribe(() => {
      throw new Error('a consumer bug');
    });
    observer.subscribe((t) => seen.push(t));
    await expect(timed('create', 'x', 'local', async () => 7, observer)).resolves.toBe(7);
    expect(seen).toEqual([expect.objectContaining({ operation: 'create', volume: 'x', backend: 'local', result: 'ok' })]);
  });
});

describe('the sampler', () => {
  it('sweeps again after each pause, never two at once, and stops a sweep in progress', async () => {
    const m = new NetvolMetrics('h1');
    let running = 0;
    let most = 0;
    let sweeps = 0;
    let lastSignal: AbortSignal | undefined;
    const src: StatsApi = {
      sweepStats: async (_c, signal) => {
        lastSignal = signal;
        running++;
        most = Math.max(most, running);
        sweeps++;
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return { volumes: [], backends: [{ name: 'local', up: true }] };
      },
      volumesHere: () => [],
      hostFacts: () => ({ mounts: 0 }),
    };
    const sampler = new StatsSampler(src, m, { intervalMs: 10, concurrency: 4, log: quiet });
    sampler.start();
    while (sweeps < 4) await new Promise((r) => setTimeout(r, 10));
    await sampler.stop();
    const after = sweeps;
    await new Promise((r) => setTimeout(r, 80));
    expect(sweeps).toBe(after);
    expect(most).toBe(1);
    expect(lastSignal?.aborted).toBe(true);
    expect(value(await m.scrape(), 'netvol_backend_up{backend="local",host="h1"}')).toBe(1);
  });

  it('keeps the previous values when a sweep fails', async () => {
    const m = new NetvolMetrics('h1');
    const src = new FakeSource();
    src.sweep = { volumes: [{ name: 'v', backend: 'local', layout: 'directory', usedBytes: 9 }], backends: [] };
    const sampler = new StatsSampler(src, m, { intervalMs: 3_600_000, concurrency: 4, log: quiet });
    await sampler.sweepOnce();
    src.sweepStats = async () => Promise.reject(new Error('backend listing failed'));
    await sampler.sweepOnce();
    expect(value(await m.scrape(), 'netvol_volume_used_bytes{volume="v",backend="local",host="h1"}')).toBe(9);
  });
});

describe('the HTTP server', () => {
  it('binds exactly the configured address and serves the text format at /metrics only', async () => {
    const m = new NetvolMetrics('h1');
    const server = await serveMetrics({ host: '127.0.0.1', port: 0, text: '127.0.0.1:0' }, m, quiet);
    try {
      const { host, port } = server.address();
      expect(host).toBe('127.0.0.1');
      const ok = await get(port, '/metrics');
      expect(ok.status).toBe(200);
      expect(ok.type).toContain('text/plain; version=0.0.4');
      expect(ok.text).toContain('# TYPE netvol_operation_duration_seconds histogram');
      expect((await get(port, '/')).status).toBe(404);
      // As Prometheus asks: gzip, sent as one gzip member per block, which decode as one text.
      const gz = await get(port, '/metrics', 'GET', '127.0.0.1', { 'accept-encoding': 'gzip' });
      expect(gz.encoding).toBe('gzip');
      expect(zlib.gunzipSync(gz.body).toString('utf8')).toBe(ok.text);
      expect((await get(port, '/metrics', 'POST')).status).toBe(405);
      // Not on another address of this host.
      const other = firstOtherAddress();
      if (other) await expect(get(port, '/metrics', 'GET', other)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await server.close();
    }
  });

  it('refuses to start on a port in use or an address this host does not have, saying what to do', async () => {
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()));
    const port = (squatter.address() as net.AddressInfo).port;
    try {
      const busy = await Metrics.start({ listen: `127.0.0.1:${port}`, intervalSeconds: 60, hostId: 'h1', log: quiet }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isNetvolError(busy, 'CONFIG')).toBe(true);
      expect((busy as Error).message).toBe(`cannot serve metrics on metrics.listen 127.0.0.1:${port}: the port is already in use by another process; choose a free port, or remove metrics from the config`);
    } finally {
      squatter.close();
    }
    const foreign = await Metrics.start({ listen: '192.0.2.7:9911', intervalSeconds: 60, hostId: 'h1', log: quiet }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((foreign as Error).message).toContain('192.0.2.7 is not an address of this host');
    const named = await Metrics.start({ listen: 'localhost:9911', intervalSeconds: 60, hostId: 'h1', log: quiet }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((named as Error).message).toContain('host names are refused');
  });
});

/** An IPv4 address of this host other than loopback, if it has one. */
function firstOtherAddress(): string | undefined {
  const os = require('node:os') as typeof import('node:os');
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}
