/**
 * The multihost harness itself: three hosts come up, each with its own dockerd and netvol, share
 * one sshd and one ganesha on the run's bridge, and leave nothing behind.
 */
import * as fs from 'node:fs';
import { BACKENDS, Cluster, startCluster, uniqueName } from './support/cluster';

jest.setTimeout(240_000);

let cluster: Cluster | undefined;
let leftovers: string[] = [];

beforeAll(async () => {
  cluster = await startCluster();
}, 240_000);

afterAll(async () => {
  leftovers = (await cluster?.stop()) ?? [];
  expect(leftovers).toEqual([]);
}, 240_000);

function c(): Cluster {
  if (!cluster) throw new Error('the cluster did not start');
  return cluster;
}

test('each host has its own dockerd and netvol, reachable only on the run bridge', async () => {
  const pids = new Set<number | undefined>();
  for (const h of c().hosts) {
    pids.add(h.dockerdPid);
    pids.add(h.netvolPid);
    expect(fs.existsSync(h.socket)).toBe(true);
    // The host sees its own plugin socket under the standard name, and no other host's.
    const ls = await h.exec('ls', ['/run/docker/plugins']);
    expect(ls.stdout.split('\n').filter(Boolean)).toEqual(['netvol.sock']);
    const route = await h.exec('ip', ['-4', 'route', 'show']);
    expect(route.stdout).not.toMatch(/default/);
  }
  expect(pids.size).toBe(c().hosts.length * 2);
});

describe.each(BACKENDS)('on %s', (backend) => {
  test('a directory volume created on h1 is seen by h2 and h3', async () => {
    const [h1, h2, h3] = c().hosts;
    const v = uniqueName(`smoke-${backend}`);
    await h1.dockerOk(['volume', 'create', '-d', 'netvol', '-o', `backend=${backend}`, v]);
    expect(fs.existsSync(c().volumeDir(backend, v))).toBe(true);
    for (const h of [h2, h3]) {
      const out = JSON.parse(await h.dockerOk(['volume', 'inspect', v])) as Array<{ Driver: string; Status: Record<string, unknown> }>;
      expect(out[0].Driver).toBe('netvol');
      expect(out[0].Status.backend).toBe(backend);
    }
    await h1.dockerOk(['volume', 'rm', v]);
  });
});
