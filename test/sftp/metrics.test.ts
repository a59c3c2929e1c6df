import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep } from '../harness/dockerd';
import type { Netvol } from '../harness/netvol';
import { startSshd, Sshd } from '../harness/sshd';
import { freePort, httpGet, promtoolCheckMetrics, seriesValue } from '../e2e/support/prometheus';
import { ok, startSftpNetvol } from './support/daemon';

jest.setTimeout(150_000);

/**
 * The metrics of volumes on an sftp backend (a real sshd, the real daemon): usage, health, mounts
 * and the lease of an image volume on a shared backend, timings labelled with the backend, and
 * backend_up and health going to 0 when the server dies.
 */
let sshd: Sshd;
let nv: Netvol;
let port = 0;
const MiB = 1024 * 1024;
const host = 'metrics-sftp';
const labels = (volume: string) => `{volume="${volume}",backend="remote",host="${host}"}`;

async function scrape(): Promise<string> {
  const r = await httpGet(`http://127.0.0.1:${port}/metrics`);
  if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}`);
  return r.text;
}

/** Scrapes until `accept` holds (the sweep runs every 5 s). */
async function until(what: string, accept: (text: string) => boolean, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < end) {
    text = await scrape();
    if (accept(text)) return text;
    await sleep(500);
  }
  throw new Error(`metrics: ${what} not seen within ${timeoutMs} ms\n${text.split('\n').filter((l) => l.includes('remote')).join('\n')}\n--- netvol log ---\n${nv.logTail(20)}`);
}

beforeAll(async () => {
  sshd = await startSshd();
  port = await freePort();
  nv = await startSftpNetvol(sshd, { hostId: host, timeoutSeconds: 5, extraConfig: { metrics: { listen: `127.0.0.1:${port}`, intervalSeconds: 5 } } });
}, 90_000);

afterAll(async () => {
  await nv?.cleanup();
  await sshd?.cleanup();
}, 90_000);

describe('metrics of sftp volumes', () => {
  test('a mounted folder and image volume show their usage, health, mounts and the image\'s lease', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'mdir', Opts: { backend: 'remote' } });
    await ok(nv, 'VolumeDriver.Create', { Name: 'mimg', Opts: { backend: 'remote', size: '64M' } });
    const dirMp = (await ok(nv, 'VolumeDriver.Mount', { Name: 'mdir', ID: 'A' })).Mountpoint as string;
    const imgMp = (await ok(nv, 'VolumeDriver.Mount', { Name: 'mimg', ID: 'A' })).Mountpoint as string;
    fs.writeFileSync(path.join(dirMp, 'f'), Buffer.alloc(2 * MiB, 1));
    fs.writeFileSync(path.join(imgMp, 'f'), Buffer.alloc(4 * MiB, 1));

    const text = await until('the written bytes', (t) => (seriesValue(t, `netvol_volume_used_bytes${labels('mimg')}`) ?? 0) >= 4 * MiB && (seriesValue(t, `netvol_volume_used_bytes${labels('mdir')}`) ?? 0) >= 2 * MiB);
    expect(seriesValue(text, `netvol_volume_capacity_bytes${labels('mimg')}`)).toBe(64 * MiB);
    expect(seriesValue(text, `netvol_volume_healthy${labels('mimg')}`)).toBe(1);
    expect(seriesValue(text, `netvol_volume_healthy${labels('mdir')}`)).toBe(1);
    expect(seriesValue(text, `netvol_volume_inodes_free${labels('mimg')}`)).toBeGreaterThan(0);
    expect(seriesValue(text, `netvol_volume_mounts${labels('mimg')}`)).toBe(1);
    expect(seriesValue(text, `netvol_lease_held${labels('mimg')}`)).toBe(1);
    expect(seriesValue(text, `netvol_lease_held${labels('mdir')}`)).toBeUndefined();
    expect(seriesValue(text, `netvol_backend_up{backend="remote",host="${host}"}`)).toBe(1);
    expect(seriesValue(text, `netvol_operation_duration_seconds_count{operation="mount",backend="remote",result="ok",host="${host}"}`)).toBe(2);
    const lint = await promtoolCheckMetrics(text);
    expect({ code: lint.code, out: `${lint.stdout}${lint.stderr}`.trim() }).toEqual({ code: 0, out: '' });
  });

  test('when the server dies, the next sweep says the backend is down; the image volume, fenced once its lease lapses, unhealthy; mount counts stay', async () => {
    await sshd.kill();
    try {
      // This host stops an image volume's data path when it cannot renew its heartbeat for half the lease (15 s).
      await until('backend down and mimg unhealthy', (t) => seriesValue(t, `netvol_backend_up{backend="remote",host="${host}"}`) === 0 && seriesValue(t, `netvol_volume_healthy${labels('mimg')}`) === 0, 90_000);
      const text = await until('mimg fenced: its lease given up', (t) => seriesValue(t, `netvol_lease_held${labels('mimg')}`) === 0, 90_000);
      expect(seriesValue(text, `netvol_volume_healthy${labels('mimg')}`)).toBe(0);
      expect(seriesValue(text, `netvol_volume_mounts${labels('mimg')}`)).toBe(1);
      expect(seriesValue(text, `netvol_volume_mounts${labels('mdir')}`)).toBe(1);
      expect(seriesValue(text, `netvol_lease_held${labels('mimg')}`)).toBe(0);
      // sshfs reconnects by itself when a refusing server comes back: netvol counts that attachment as working.
      expect(seriesValue(text, `netvol_volume_healthy${labels('mdir')}`)).toBeDefined();
      expect(seriesValue(text, `netvol_volume_stats_failures{host="${host}"}`)).toBeGreaterThanOrEqual(2);
    } finally {
      await sshd.restart();
    }
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'mimg', ID: 'A' });
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'mdir', ID: 'A' });
    await ok(nv, 'VolumeDriver.Remove', { Name: 'mimg' });
    await ok(nv, 'VolumeDriver.Remove', { Name: 'mdir' });
  });
});
