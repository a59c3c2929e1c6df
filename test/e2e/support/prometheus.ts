/**
 * A private Prometheus (Debian's `prometheus` package) for one test file: its own config, data
 * folder and loopback port, scraping the targets it is given every second. Stopped by its own PID.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isAlive, run, RunResult, sleep, terminate } from '../../harness/dockerd';

export const PROMETHEUS = '/usr/bin/prometheus';
export const PROMTOOL = '/usr/bin/promtool';

export interface Prometheus {
  readonly port: number;
  readonly dir: string;
  readonly pid: number | undefined;
  /** An instant query through the HTTP API (/api/v1/query): the result vector. */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** Polls `promql` until `accept` holds for its result (or the time is up: rejects with the last result). */
  waitFor(promql: string, accept: (r: Array<{ metric: Record<string, string>; value: [number, string] }>) => boolean, timeoutMs?: number): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  logTail(lines?: number): string;
  /** SIGTERM to its PID (SIGKILL after 10 s), then its folder is removed. Idempotent. */
  stop(): Promise<void>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** GET over loopback; resolves with status and body. */
export function httpGet(url: string, timeoutMs = 10_000): Promise<{ status: number; text: string; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: res.headers['content-type'] }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** `promtool check metrics` on a scrape's text (on stdin). */
export function promtoolCheckMetrics(text: string): Promise<RunResult> {
  return run(PROMTOOL, ['check', 'metrics'], { input: text, timeoutMs: 60_000 });
}

export async function startPrometheus(targets: string[]): Promise<Prometheus> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netvol-prometheus-'));
  const port = await freePort();
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: netvol',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'prometheus.log');
  const out = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'],
    { stdio: ['ignore', out, out], detached: false },
  );
  fs.closeSync(out);
  const pid = child.pid;
  let stopped = false;
  const logTail = (lines = 30) => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '');
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (pid !== undefined && isAlive(pid)) await terminate(pid, 10_000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const base = `http://127.0.0.1:${port}`;
  const query: Prometheus['query'] = async (promql) => {
    const r = await httpGet(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = JSON.parse(r.text) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (r.status !== 200 || body.status !== 'success' || !body.data) throw new Error(`query ${promql}: HTTP ${r.status} ${body.error ?? r.text.slice(0, 200)}`);
    return body.data.result;
  };
  const p: Prometheus = {
    port,
    dir,
    pid,
    query,
    logTail,
    stop,
    async waitFor(promql, accept, timeoutMs = 45_000) {
      const until = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        try {
          const r = await query(promql);
          if (accept(r)) return r;
          last = r;
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > until) throw new Error(`Prometheus: ${promql} did not reach the expected value within ${timeoutMs} ms; last: ${JSON.stringify(last)}\n${logTail()}`);
        await sleep(500);
      }
    },
  };
  try {
    const until = Date.now() + 60_000;
    for (;;) {
      if (pid === undefined || !isAlive(pid)) throw new Error(`prometheus exited at start:\n${logTail()}`);
      const ready = await httpGet(`${base}/-/ready`, 2_000).catch(() => undefined);
      if (ready?.status === 200) break;
      if (Date.now() > until) throw new Error(`prometheus not ready within 60 s:\n${logTail()}`);
      await sleep(300);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return p;
}

/** The value of one series in a scrape's text, by its label set in any order, e.g. `name{a="1",b="2"}` (undefined when absent). */
export function seriesValue(text: string, series: string): number | undefined {
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
