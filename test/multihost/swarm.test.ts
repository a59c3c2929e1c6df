/**
 * A three-node swarm whose global service writes into one netvol volume from every node. Each node
 * calls Get and then Create for the volume at nearly the same moment (issue 11, item 4), then
 * mounts it; every node's writes must land in the one volume.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { waitFor } from '../harness/dockerd';
import { BACKENDS, BUSYBOX_IMAGE, Cluster, startCluster, uniqueName } from './support/cluster';
import { findFiles, serverEntriesFor } from './support/volumes';

jest.setTimeout(240_000);

let cluster: Cluster | undefined;

beforeAll(async () => {
  cluster = await startCluster();
  const [h1, ...others] = cluster.hosts;
  await h1.dockerOk(['swarm', 'init', '--advertise-addr', h1.addr, '--listen-addr', `${h1.addr}:2377`]);
  const token = await h1.dockerOk(['swarm', 'join-token', '-q', 'worker']);
  await Promise.all(others.map((h) => h.dockerOk(['swarm', 'join', '--token', token, '--advertise-addr', h.addr, '--listen-addr', `${h.addr}:2377`, `${h1.addr}:2377`])));
  await waitFor(
    'every node to be Ready',
    async () => {
      const out = await h1.dockerOk(['node', 'ls', '--format', '{{.Status}}']);
      const st = out.split('\n').filter(Boolean);
      return st.length === cluster!.hosts.length && st.every((s) => s === 'Ready');
    },
    60_000,
    500,
  );
  // No `docker volume` command on any node: each node's netvol announces itself to its dockerd at
  // start (dockerHost), which is what makes swarm place tasks there (moby#23619).
}, 300_000);

afterAll(async () => {
  const left = (await cluster?.stop()) ?? [];
  expect(left).toEqual([]);
}, 240_000);

function c(): Cluster {
  if (!cluster) throw new Error('the cluster did not start');
  return cluster;
}

describe.each(BACKENDS)('on %s', (backend) => {
  test('a global service on three nodes writes into one volume, and every node’s file lands in it', async () => {
    const h1 = c().hosts[0];
    const v = uniqueName(`swarm-${backend}`);
    const svc = `svc-${v}`;
    const nodeIds = (await h1.dockerOk(['node', 'ls', '-q'])).split('\n').filter(Boolean).sort();
    expect(nodeIds).toHaveLength(3);
    await h1.dockerOk(
      [
        'service', 'create', '--detach', '--name', svc, '--mode', 'global', '--network', 'host',
        '--env', 'NODE={{.Node.ID}}',
        '--mount', `type=volume,source=${v},target=/d,volume-driver=netvol,volume-opt=backend=${backend}`,
        BUSYBOX_IMAGE, 'sh', '-c', 'for i in 1 2 3; do echo "$NODE $i" >> /d/$NODE; done; sync; sleep 3600',
      ],
      { timeoutMs: 60_000 },
    );
    try {
      const data = path.join(c().volumeDir(backend, v), 'data');
      const lines = await waitFor(
        'every node to write its file into the volume',
        () => {
          const files = fs.existsSync(data) ? fs.readdirSync(data).sort() : [];
          if (files.length < nodeIds.length) return undefined;
          const text = files.map((f) => fs.readFileSync(path.join(data, f), 'utf8'));
          return text.every((t) => t.split('\n').filter(Boolean).length === 3) ? { files, text } : undefined;
        },
        120_000,
        500,
      ).catch(async (err: Error) => {
        const ps = await h1.docker(['service', 'ps', '--no-trunc', svc]);
        throw new Error(`${err.message}\n--- service ps ---\n${ps.stdout}${ps.stderr}\n${c().diagnostics(15)}`);
      });
      expect(lines.files).toEqual(nodeIds);
      expect(lines.text).toEqual(nodeIds.map((id) => [1, 2, 3].map((i) => `${id} ${i}\n`).join('')));
      // The three near-simultaneous Creates made one volume.
      expect(serverEntriesFor(c().serverDir(backend), v)).toEqual([v]);
      expect(findFiles(c().volumeDir(backend, v), 'volume.json')).toHaveLength(1);
    } finally {
      await h1.docker(['service', 'rm', svc]);
    }
    // Once every task is gone, the volume can be removed, and is gone for every node.
    await waitFor(
      'the service tasks to stop on every node',
      async () => (await Promise.all(c().hosts.map((h) => h.dockerOk(['ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${svc}`])))).every((o) => o === ''),
      60_000,
      500,
    );
    await waitFor('the volume to be removable', async () => (await h1.docker(['volume', 'rm', v])).code === 0, 30_000, 1000);
    for (const h of c().hosts.slice(1)) {
      await h.docker(['volume', 'rm', v]); // this node's dockerd may still list its own reference
      expect((await h.docker(['volume', 'inspect', v])).code).toBe(1);
    }
    expect(serverEntriesFor(c().serverDir(backend), v).filter((e) => e === v)).toEqual([]);
  });
});
