import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '../harness/dockerd';
import { MAIN_JS } from '../harness/netvol';
import { freePort, httpGet, Prometheus, promtoolCheckMetrics, startPrometheus } from './support/prometheus';
import { BUSYBOX_IMAGE, MiB, World, startWorld, stopWorld, uniqueName } from './support/world';

jest.setTimeout(180_000);

/**
 * A real Prometheus (Debian's package) scrapes a real netvol daemon with metrics on a loopback port,
 * while a real dockerd creates and mounts its volumes; the metrics are read back through
 * Prometheus' HTTP API, and `promtool check metrics` lints a scrape.
 */
describe('Prometheus scrapes netvol', () => {
  let w: World;
  let prom: Prometheus | undefined;
  let metricsPort = 0;
  const img = uniqueName('metrics-img');
  const dir = uniqueName('metrics-dir');
  let container = '';

  beforeAll(async () => {
    metricsPort = await freePort();
    w = await startWorld({ extraConfig: { hostId: 'metrics-host', metrics: { listen: `127.0.0.1:${metricsPort}`, intervalSeconds: 5 } } });
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', img]);
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, dir]);
    container = await w.d.dockerOk([
      'run', '--network', 'none', '--pull', 'never', '-d', '-v', `${img}:/data`, BUSYBOX_IMAGE,
      'sh', '-c', 'dd if=/dev/zero of=/data/f bs=1M count=8 2>/dev/null && sync && sleep 600',
    ]);
    prom = await startPrometheus([`127.0.0.1:${metricsPort}`]);
  }, 180_000);

  afterAll(async () => {
    await prom?.stop();
    await stopWorld(w);
  }, 300_000);

  const one = (r: Array<{ value: [number, string] }>) => (r.length === 1 ? Number(r[0].value[1]) : NaN);

  test('Prometheus scrapes the daemon (up == 1)', async () => {
    await prom!.waitFor('up{job="netvol"}', (r) => one(r) === 1);
  });

  test('a volume in use by a container shows one mount on this host, the other none', async () => {
    const r = await prom!.waitFor(`netvol_volume_mounts{volume="${img}"}`, (x) => one(x) === 1);
    expect(r[0].metric).toMatchObject({ volume: img, backend: 'local', host: 'metrics-host', job: 'netvol' });
    await prom!.waitFor(`netvol_volume_mounts{volume="${dir}"}`, (x) => one(x) === 0);
  });

  // Prometheus asks for gzip: netvol answers with one gzip member per block (sweep, host facts,
  // timings). The mount counts above (second member) and the timings below (third) read through
  // Prometheus prove that its Go client reads the whole multi-member stream.
  test('operation timings are counted by operation, backend and result', async () => {
    const r = await prom!.waitFor('sum by (operation) (netvol_operation_duration_seconds_count{backend="local",result="ok"})', (x) => x.length >= 2);
    const byOp = Object.fromEntries(r.map((s) => [s.metric.operation, Number(s.value[1])]));
    expect(byOp.create).toBeGreaterThanOrEqual(2);
    expect(byOp.mount).toBeGreaterThanOrEqual(1);
  });

  test('the background sweep reports the image volume\'s capacity and the 8 MiB written, its health, inodes and the backend up', async () => {
    await prom!.waitFor(`netvol_volume_used_bytes{volume="${img}"}`, (x) => one(x) >= 8 * MiB);
    expect(one(await prom!.query(`netvol_volume_capacity_bytes{volume="${img}"}`))).toBe(64 * MiB);
    expect(one(await prom!.query(`netvol_volume_available_bytes{volume="${img}"}`))).toBeLessThan(56 * MiB);
    expect(one(await prom!.query(`netvol_volume_healthy{volume="${img}"}`))).toBe(1);
    expect(one(await prom!.query(`netvol_volume_inodes{volume="${img}"}`))).toBeGreaterThan(0);
    expect(one(await prom!.query(`netvol_volume_inodes_free{volume="${img}"}`))).toBeGreaterThan(0);
    expect(await prom!.query(`netvol_volume_healthy{volume="${dir}"}`)).toEqual([]); // not attached here
    expect(one(await prom!.query(`netvol_volume_capacity_bytes{volume="${dir}"}`))).toBeGreaterThan(0);
    expect(one(await prom!.query('netvol_backend_up{backend="local"}'))).toBe(1);
    expect(one(await prom!.query('time() - netvol_volume_stats_timestamp_seconds'))).toBeLessThan(60);
  });

  test('a scrape passes `promtool check metrics`', async () => {
    const scrape = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.text).toContain(`netvol_volume_mounts{volume="${img}",backend="local",host="metrics-host"} 1`);
    const lint = await promtoolCheckMetrics(scrape.text);
    expect({ code: lint.code, out: `${lint.stdout}${lint.stderr}`.trim() }).toEqual({ code: 0, out: '' });
  });

  test('when the container ends, the mount count goes back to 0', async () => {
    await w.d.dockerOk(['rm', '-f', container]);
    await prom!.waitFor(`netvol_volume_mounts{volume="${img}"}`, (x) => one(x) === 0);
    await prom!.waitFor('sum(netvol_operation_duration_seconds_count{operation="unmount",result="ok"})', (x) => one(x) >= 1);
  });

  test('a removed volume\'s series disappear', async () => {
    await w.d.dockerOk(['volume', 'rm', dir]);
    await prom!.waitFor(`netvol_volume_capacity_bytes{volume="${dir}"}`, (x) => x.length === 0);
    await prom!.waitFor(`netvol_volume_mounts{volume="${dir}"}`, (x) => x.length === 0);
  });

  test('the daemon listens for metrics on the configured address only', async () => {
    const other = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (other) await expect(httpGet(`http://${other}:${metricsPort}/metrics`, 3_000)).rejects.toThrow(/ECONNREFUSED/);
    expect((await httpGet(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);
  });
});

describe('a bad metrics.listen refuses the start', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'netvol-metrics-refusal-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const startWith = async (listen: string) => {
    const config = path.join(root, `config-${Math.random().toString(16).slice(2)}.json`);
    fs.writeFileSync(
      config,
      JSON.stringify({
        socket: path.join(root, 'never.sock'),
        stateDir: path.join(root, 'state'),
        dockerHost: '',
        metrics: { listen },
        backends: { local: { type: 'local', path: path.join(root, 'volumes') } },
      }),
    );
    return run(process.execPath, [MAIN_JS, '--config', config], { timeoutMs: 30_000 });
  };

  test.each([
    ['localhost:9911', 'host names are refused'],
    ['127.0.0.1:0', 'port 0 is outside 1-65535'],
    ['192.0.2.7:9911', '192.0.2.7 is not an address of this host'],
  ])('%s: exit 2 with a sentence that says what to do, nothing made', async (listen, why) => {
    const r = await startWith(listen);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(why);
    expect(r.stderr).toMatch(/^netvol: .*metrics\.listen.*(e\.g\. 127\.0\.0\.1:9911|remove metrics from the config)/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(fs.existsSync(path.join(root, 'never.sock'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'state', 'state.json'))).toBe(false);
  });
});
