/**
 * The cost of a Prometheus scrape with thousands of volumes (issue 14): GET /metrics over loopback
 * from the metrics' own HTTP server, with N volumes already measured by a sweep, against the same
 * server with no volumes (the floor of HTTP + prom-client's fixed families), asking for gzip as
 * Prometheus does (a plain-text scrape is shown for information). Two cases: a quiet
 * daemon (nothing happened since the last scrape: every text is served as formatted) and a busy one
 * (an operation before every scrape: the mount counts and leases of every volume are formatted
 * again). The sweep's own cost (setting and formatting N volumes' values, in the background) is
 * shown for information. In-process: no dockerd, no backend; the driver's facts come from a fake.
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { StatsApi, StatsSweep, VolumeRef } from '../../src/driver';
import { createLogger } from '../../src/log';
import { NetvolMetrics, serveMetrics } from '../../src/metrics';
import { elapsedMs, interleaved, median, percentile } from '../lib/stats';
import { Row, Section } from '../lib/types';

const VOLUMES = 5000;
const QUIET_TARGET_MS = 50;
const BUSY_TARGET_MS = 500;

function fakeSource(n: number): { source: StatsApi; sweep: StatsSweep } {
  const refs: VolumeRef[] = Array.from({ length: n }, (_, i) => ({ name: `volume-${String(i).padStart(5, '0')}`, backend: i % 3 === 0 ? 'sftp' : 'local', layout: i % 2 ? 'image' : 'directory' }));
  const sweep: StatsSweep = {
    volumes: refs.map((r, i) => ({ ...r, capacityBytes: 1 << 30, usedBytes: i * 4096, availableBytes: (1 << 30) - i * 4096, inodes: 65536, inodesFree: 65000 - (i % 100), healthy: i % 10 !== 0 })),
    backends: [
      { name: 'local', up: true },
      { name: 'sftp', up: true },
    ],
  };
  const source: StatsApi = {
    sweepStats: async () => sweep,
    volumesHere: () => refs.filter((_, i) => i % 4 === 0),
    hostFacts: (r) => ({ mounts: r.name.endsWith('0') ? 1 : 0, leaseHeld: r.layout === 'image' && r.backend === 'sftp' ? true : undefined }),
  };
  return { source, sweep };
}

/** GET /metrics as Prometheus sends it (Accept-Encoding: gzip, unless `plain`); resolves with the bytes received. */
function scrape(port: number, plain = false): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', agent: false, headers: plain ? {} : { 'accept-encoding': 'gzip' } }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`GET /metrics answered ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

export const section: Section = {
  name: 'metrics',
  description: `Prometheus scrape time with ${VOLUMES} volumes (quiet and busy daemon) vs an empty registry`,
  async run(ctx) {
    const log = createLogger('error');
    const rounds = ctx.quick ? 10 : 40;
    const full = new NetvolMetrics('bench-host');
    const empty = new NetvolMetrics('bench-host');
    const { source, sweep } = fakeSource(VOLUMES);
    full.attach(source);
    empty.attach(fakeSource(0).source);
    const stalls = monitorEventLoopDelay({ resolution: 1 });
    stalls.enable();
    const applyStart = process.hrtime.bigint();
    await full.applySweep(sweep, new Date(), 1);
    const applyMs = elapsedMs(applyStart);
    stalls.disable();
    const longestStallMs = stalls.max / 1e6;
    const servers = [await serveMetrics({ host: '127.0.0.1', port: 0, text: '127.0.0.1:0' }, full, log), await serveMetrics({ host: '127.0.0.1', port: 0, text: '127.0.0.1:0' }, empty, log)];
    ctx.defer(() => Promise.all(servers.map((s) => s.close())));
    const [fullPort, emptyPort] = servers.map((s) => s.address().port);

    const times: Record<'quiet' | 'busy' | 'emptyQuiet' | 'emptyBusy' | 'plain', number[]> = { quiet: [], busy: [], emptyQuiet: [], emptyBusy: [], plain: [] };
    let bytes = 0;
    let plainBytes = 0;
    const timing = { operation: 'mount', volume: 'volume-00010', backend: 'local', durationSeconds: 0.02, result: 'ok' };
    const one = async (kind: keyof typeof times) => {
      const m = kind === 'emptyQuiet' || kind === 'emptyBusy' ? empty : full;
      if (kind === 'busy' || kind === 'emptyBusy') m.observe(timing);
      const t = process.hrtime.bigint();
      const got = await scrape(m === full ? fullPort : emptyPort, kind === 'plain');
      times[kind].push(elapsedMs(t));
      if (kind === 'quiet') bytes = got;
      if (kind === 'plain') plainBytes = got;
    };
    // Warm-up: formats every text once (the first scrape after a sweep would otherwise pay for the host facts).
    for (const k of Object.keys(times) as Array<keyof typeof times>) await one(k);
    for (const k of Object.keys(times) as Array<keyof typeof times>) times[k] = [];
    for (let i = 0; i < rounds; i++) for (const k of interleaved(['quiet', 'emptyQuiet', 'busy', 'emptyBusy', 'plain'] as const, i)) await one(k);

    ctx.note(`${VOLUMES} volumes → ${(plainBytes / 1024 / 1024).toFixed(1)} MiB of text per scrape (8 series per volume), ${(bytes / 1024).toFixed(0)} KiB gzipped; p50/p99 over ${rounds} scrapes each, interleaved; quiet p99 ${percentile(times.quiet, 99).toFixed(1)} ms, busy p99 ${percentile(times.busy, 99).toFixed(1)} ms; the client runs in the same process as the server, so its reading counts too.`);
    const label = `${VOLUMES} volumes`;
    return [
      { metric: `GET /metrics p50, quiet daemon (${rounds}×)`, netvol: { value: median(times.quiet), unit: 'ms', label }, baseline: { value: median(times.emptyQuiet), unit: 'ms', label: 'no volumes' }, target: { on: 'netvol', op: '<', value: QUIET_TARGET_MS } },
      { metric: `GET /metrics p50, an operation before each scrape (${rounds}×)`, netvol: { value: median(times.busy), unit: 'ms', label }, baseline: { value: median(times.emptyBusy), unit: 'ms', label: 'no volumes' }, target: { on: 'netvol', op: '<', value: BUSY_TARGET_MS } },
      { metric: `GET /metrics p50, plain text (no gzip), quiet (${rounds}×)`, netvol: { value: median(times.plain), unit: 'ms', label } },
      { metric: 'applying one sweep (background, chunked, formatted and gzipped)', netvol: { value: applyMs, unit: 'ms', label } },
      { metric: 'longest event-loop stall while applying it', netvol: { value: longestStallMs, unit: 'ms', label } },
    ] satisfies Row[];
  },
};
