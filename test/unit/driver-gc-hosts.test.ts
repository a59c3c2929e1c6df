import { promises as fs } from 'node:fs';
import path from 'node:path';
import { makeHosts, HostsWorld } from './support/hosts-world';

/**
 * gc of the heartbeat files of hosts that are gone, over one folder several drivers share (a
 * stand-in for an sftp or NFS server): a host counts as gone only when its file has not changed for
 * a whole lease of the reading host's clock, and for --host-age as that daemon watched it.
 */
jest.setTimeout(90_000);

const LEASE = 5;
let w: HostsWorld;
afterAll(async () => {
  await w?.cleanup();
});

const hostFile = (host: string) => path.join(w.shared, '.netvol-hosts', `${host}.json`);
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

test('the heartbeat of a stopped host goes once it has been quiet for a lease; a live host\'s and the reader\'s own stay', async () => {
  w = await makeHosts('gc', ['host-a', 'host-b', 'host-c'], LEASE);
  const [a, b, c] = w.hosts;
  await a.driver.create('vol', {});
  await b.driver.mount('vol', 'on-b');
  await c.driver.list();
  await a.driver.list();
  expect(await exists(hostFile('host-b'))).toBe(true);
  expect(JSON.parse(await fs.readFile(hostFile('host-b'), 'utf8')).volumes).toEqual({ vol: 'shared' });
  await b.stop();

  // The default age (10 min on this daemon's clock) is not reached: nothing listed, at once.
  const young = await a.driver.operations.gc({ apply: false, retained: false });
  expect(young.items.filter((i) => i.kind === 'host')).toEqual([]);

  const dry = await a.driver.operations.gc({ apply: false, retained: false, hostAgeMs: 0 });
  expect(dry.items.filter((i) => i.kind === 'host')).toEqual([
    expect.objectContaining({ backend: 'nas', target: '.netvol-hosts/host-b.json', state: 'found', reason: expect.stringContaining('listed vol as attached') }),
  ]);
  expect(await exists(hostFile('host-b'))).toBe(true);

  const applied = await a.driver.operations.gc({ apply: true, retained: false, hostAgeMs: 0 });
  expect(applied.items.filter((i) => i.kind === 'host').map((i) => [i.target, i.state])).toEqual([['.netvol-hosts/host-b.json', 'removed']]);
  expect(await exists(hostFile('host-b'))).toBe(false);
  expect(await exists(hostFile('host-a'))).toBe(true);
  expect(await exists(hostFile('host-c'))).toBe(true);
  // With host-b's record gone, the volume counts as attached nowhere else: host-a may remove it.
  await a.driver.remove('vol');
});
