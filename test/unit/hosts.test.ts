import { promises as fs } from 'node:fs';
import path from 'node:path';
import { findMount } from '../../src/system';
import { makeHosts, HostsWorld } from './support/hosts-world';
import { refusal } from './support/driver-world';

jest.setTimeout(60_000);

const LEASE = 5;
let w: HostsWorld;
const worlds: HostsWorld[] = [];

async function fresh(tag: string, ids = ['host-a', 'host-b', 'host-c']): Promise<HostsWorld> {
  const world = await makeHosts(tag, ids, LEASE);
  worlds.push(world);
  return world;
}

afterAll(async () => {
  for (const world of worlds) await world.cleanup();
});

const volumeJson = async (name: string) => JSON.parse(await fs.readFile(path.join(w.shared, name, 'volume.json'), 'utf8')) as { spec: Record<string, unknown> };

describe('the backend is the one truth', () => {
  beforeAll(async () => {
    w = await fresh('truth');
  });

  it('a volume removed on host A is "not found" on host B, and B can create it again with other options', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('v1', { mode: '0750' });
    expect((await b.driver.get('v1')).status).toMatchObject({ backend: 'nas', createdBy: 'host-a' });
    await a.driver.remove('v1');
    expect(await refusal(b.driver.get('v1'))).toMatchObject({ code: 'NOT_FOUND' });
    await b.driver.create('v1', { size: '32M' });
    expect((await volumeJson('v1')).spec).toMatchObject({ layout: 'image', sizeBytes: 32 * 1024 * 1024 });
    expect((await a.driver.get('v1')).status).toMatchObject({ layout: 'image', createdBy: 'host-b' });
  });

  it("a Create with other options than the volume's, sent from another host, is refused naming the options", async () => {
    const [a, b] = w.hosts;
    await a.driver.create('v2', {});
    const r = await refusal(b.driver.create('v2', { size: '64M' }));
    expect(r.code).toBe('OPTIONS_CONFLICT');
    expect(r.message).toMatch(/volume v2 already exists with different options \(.*size/);
  });

  it('the same Create sent from three hosts at once makes one volume, and all three succeed', async () => {
    await Promise.all(w.hosts.map((h) => h.driver.create('trio', { size: '32M' })));
    expect((await fs.readdir(w.shared)).filter((f) => f.startsWith('trio'))).toEqual(['trio']);
    expect((await fs.readdir(path.join(w.shared, 'trio'))).sort()).toEqual(['data.img', 'volume.json']);
    for (const h of w.hosts) expect((await h.driver.get('trio')).status).toMatchObject({ layout: 'image', sizeBytes: 32 * 1024 * 1024 });
  });

  it("this host's state file holds only this host's facts", async () => {
    const [a] = w.hosts;
    await a.driver.create('facts', {});
    await a.driver.mount('facts', 'm1');
    const saved = JSON.parse(await fs.readFile(a.store.file, 'utf8')) as { version: number; data: { volumes: Record<string, Record<string, unknown>> } };
    expect(saved.version).toBe(2);
    expect(saved.data.volumes.facts).toEqual({ backend: 'nas', layout: 'directory', mounts: { m1: 1 }, attached: true });
    await a.driver.unmount('facts', 'm1');
    expect(a.store.data.volumes.facts).toBeUndefined();
  });
});

describe('attachments are recorded per host, and Remove respects them', () => {
  beforeAll(async () => {
    w = await fresh('attach');
  });

  it("Remove on host B is refused while host A has the volume mounted; the Err names A; allowed once A unmounts; then gone everywhere", async () => {
    const [a, b, c] = w.hosts;
    await a.driver.create('busy', {});
    const mp = await a.driver.mount('busy', 'ctr1');
    await fs.writeFile(path.join(mp, 'keep.txt'), 'precious');
    const r = await refusal(b.driver.remove('busy'));
    expect(r.code).toBe('IN_USE');
    expect(r.message).toContain('volume busy is in use on host host-a');
    expect(r.message).toContain('stop the containers');
    expect(await fs.readFile(path.join(mp, 'keep.txt'), 'utf8')).toBe('precious');
    expect(await fs.readdir(path.join(w.shared, 'busy'))).not.toContain('removing.json');
    // Status on another host shows who has it attached.
    expect((await c.driver.get('busy')).status).toMatchObject({ attachedOn: ['host-a'] });

    await a.driver.unmount('busy', 'ctr1');
    await b.driver.remove('busy');
    for (const h of w.hosts) expect(await refusal(h.driver.get('busy'))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await fs.readdir(w.shared)).not.toContain('busy');
  });

  it("a host killed in the middle of Remove's handshake takes its removal marker away when it starts again: other hosts can mount the volume", async () => {
    const [a, b] = w.hosts;
    await a.driver.create('halfgone', {});
    const mp = await a.driver.mount('halfgone', 'ctr1');
    await a.driver.unmount('halfgone', 'ctr1');
    expect(mp).toBeTruthy();
    // Host B's Remove writes its marker, then B dies before it gets any further (it never answers).
    const createFile = b.backend.createFile.bind(b.backend);
    b.backend.createFile = async (name, file, data, signal) => {
      const made = await createFile(name, file, data, signal);
      if (file === 'removing.json') return new Promise<boolean>(() => undefined);
      return made;
    };
    const cutOff = b.driver.remove('halfgone').catch(() => 'given up'); // the old daemon's call ends on its time limit
    for (let i = 0; i < 100 && !(await fs.readdir(path.join(w.shared, 'halfgone'))).includes('removing.json'); i++) await new Promise((r) => setTimeout(r, 20));
    b.backend.createFile = createFile;
    await b.stop();
    await b.start();
    // B is alive again (its heartbeat beats), so only B itself can say that its Remove is over.
    expect(await fs.readdir(path.join(w.shared, 'halfgone'))).not.toContain('removing.json');
    await a.driver.mount('halfgone', 'ctr2');
    await a.driver.unmount('halfgone', 'ctr2');
    await a.driver.remove('halfgone');
    expect(await cutOff).toBe('given up');
  });

  it('one heartbeat file per host keeps all its attachments alive, whatever their number', async () => {
    const [a] = w.hosts;
    for (const n of ['m1', 'm2', 'm3', 'm4']) {
      await a.driver.create(n, {});
      await a.driver.mount(n, 'id');
    }
    const hostsDir = path.join(w.shared, '.netvol-hosts');
    const beats = (await fs.readdir(hostsDir)).filter((f) => f.endsWith('.json'));
    expect(beats).toContain('host-a.json');
    expect(beats.every((f) => /^host-[abc]\.json$/.test(f))).toBe(true); // one file per host, none per volume
    const file = JSON.parse(await fs.readFile(path.join(hostsDir, 'host-a.json'), 'utf8')) as { volumes: Record<string, string> };
    expect(file.volumes).toMatchObject({ m1: 'shared', m2: 'shared', m3: 'shared', m4: 'shared' });
    for (const n of ['m1', 'm2', 'm3', 'm4']) expect(await fs.readdir(path.join(w.shared, n))).toEqual(expect.not.arrayContaining([expect.stringMatching(/host/)]));
    for (const n of ['m1', 'm2', 'm3', 'm4']) await a.driver.unmount(n, 'id');
    const after = JSON.parse(await fs.readFile(path.join(hostsDir, 'host-a.json'), 'utf8')) as { volumes: Record<string, string> };
    expect(after.volumes).toEqual({});
  });

  it('a host whose heartbeat stopped stops counting after leaseSeconds, judged on the reader\'s own clock', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('orphan', {});
    await a.driver.mount('orphan', 'ctr');
    a.cutOff = true; // host A is gone as far as the server can tell
    const started = Date.now();
    await b.driver.remove('orphan');
    const took = (Date.now() - started) / 1000;
    expect(took).toBeGreaterThanOrEqual(LEASE - 1.5); // never before a whole lease of silence (less the beats B saw before the cut)
    expect(took).toBeLessThan(LEASE + 5);
    expect(await fs.readdir(w.shared)).not.toContain('orphan');
    a.cutOff = false;
  });
});

describe('image volumes: one writer at a time, with fencing', () => {
  beforeAll(async () => {
    w = await fresh('lease');
  });

  it('a Mount on host B is refused while host A holds the image volume, naming A', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('img', { size: '32M' });
    await a.driver.mount('img', 'ctrA');
    const r = await refusal(b.driver.mount('img', 'ctrB'));
    expect(r.code).toBe('LEASE_HELD');
    expect(r.message).toContain('volume img is attached on host host-a');
    expect(await findMount(b.mountpoint('img'))).toBeUndefined();
    expect((await b.driver.get('img')).status).toMatchObject({ leaseHolder: 'host-a', attachedOn: ['host-a'] });
    await a.driver.unmount('img', 'ctrA');
    await b.driver.mount('img', 'ctrB');
    expect((await a.driver.get('img')).status).toMatchObject({ leaseHolder: 'host-b' });
    await b.driver.unmount('img', 'ctrB');
  });

  it('of two hosts mounting one image volume at the same moment, exactly one gets it', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('race', { size: '32M' });
    const results = await Promise.allSettled([a.driver.mount('race', 'x'), b.driver.mount('race', 'y')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((loser.reason as { code: string }).code).toBe('LEASE_HELD');
    const winner = results[0].status === 'fulfilled' ? a : b;
    await winner.driver.unmount('race', winner === a ? 'x' : 'y');
  });

  it('a holder cut off from the server fences itself before another host takes over, and B gets the volume within leaseSeconds + 5 s', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('failover', { size: '32M' });
    const mpA = await a.driver.mount('failover', 'ctrA');
    await fs.writeFile(path.join(mpA, 'before.txt'), 'from A');
    a.cutOff = true;
    const asked = Date.now();
    await b.driver.mount('failover', 'ctrB');
    const tookB = (Date.now() - asked) / 1000;
    expect(tookB).toBeLessThan(LEASE + 5);
    // A stopped its data path on its own, before B had it: its image is no longer mounted there.
    const fenced = a.records.find((r) => r.message === 'fenced volume: its containers now get I/O errors; it attaches again at the next Mount once it is free');
    const attachedB = b.records.find((r) => r.message === 'attached volume' && r.volume === 'failover');
    expect(fenced).toBeDefined();
    expect(Date.parse(fenced?.timestamp as string)).toBeLessThan(Date.parse(attachedB?.timestamp as string));
    expect(await findMount(mpA)).toBeUndefined();
    expect(a.store.data.volumes.failover).toMatchObject({ attached: false, mounts: { ctrA: 1 } });
    expect(a.store.data.volumes.failover.fenced).toMatch(/could not renew its heartbeat/);
    expect((await a.driver.get('failover')).status).toMatchObject({ fenced: true });
    // B sees what A wrote before the cut.
    expect(await fs.readFile(path.join(b.mountpoint('failover'), 'before.txt'), 'utf8')).toBe('from A');

    // A's network returns: A's container stops; A's next Mount waits for B like anyone else.
    a.cutOff = false;
    await a.driver.unmount('failover', 'ctrA');
    expect(a.store.data.volumes.failover).toBeUndefined();
    expect(await refusal(a.driver.mount('failover', 'again'))).toMatchObject({ code: 'LEASE_HELD' });
    await b.driver.unmount('failover', 'ctrB');
    await a.driver.mount('failover', 'again');
    await a.driver.unmount('failover', 'again');
  });

  it('a restart of the holder keeps its image volume claimed from its first heartbeat: no other host gets it in between', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('kept', { size: '32M' });
    await a.driver.mount('kept', 'ctrA');
    await a.stop();
    await a.start();
    expect(await findMount(a.mountpoint('kept'))).toBeDefined();
    expect(a.store.data.volumes.kept).toMatchObject({ attached: true, mounts: { ctrA: 1 } });
    const file = JSON.parse(await fs.readFile(path.join(w.shared, '.netvol-hosts', 'host-a.json'), 'utf8')) as { volumes: Record<string, string> };
    expect(file.volumes.kept).toBe('exclusive');
    expect(await refusal(b.driver.mount('kept', 'ctrB'))).toMatchObject({ code: 'LEASE_HELD' });
    await a.driver.unmount('kept', 'ctrA');
  });

  it('a holder whose daemon was away longer than the lease, and whose volume another host took meanwhile, fences its own mount at restart', async () => {
    const [a, b] = w.hosts;
    await a.driver.create('away', { size: '32M' });
    await a.driver.mount('away', 'ctrA');
    await a.stop(); // the data path stays, the heartbeat stops
    await b.driver.mount('away', 'ctrB'); // waits a lease of silence, then takes it
    await a.start();
    expect(await findMount(a.mountpoint('away'))).toBeUndefined();
    expect(a.store.data.volumes.away).toMatchObject({ attached: false, mounts: { ctrA: 1 } });
    expect(a.store.data.volumes.away.fenced).toMatch(/another host holds the volume's lease/);
    expect((await b.driver.get('away')).status).toMatchObject({ leaseHolder: 'host-b' });
    await a.driver.unmount('away', 'ctrA');
    await b.driver.unmount('away', 'ctrB');
  });
});

describe('errors of the shared bookkeeping name the volume asked for', () => {
  it("a Mount whose heartbeat cannot be written names the volume, this host's heartbeat and what to do, never .netvol-hosts as a volume", async () => {
    const world = await fresh('beatfail', ['host-a']);
    const [a] = world.hosts;
    await a.driver.create('beatless', {});
    const hosts = path.join(world.shared, '.netvol-hosts');
    await fs.rm(hosts, { recursive: true, force: true });
    await fs.writeFile(hosts, 'not a folder');
    try {
      const r = await refusal(a.driver.mount('beatless', 'm1'));
      expect(r.message).toMatch(/^volume beatless cannot be mounted: this host's heartbeat on backend nas could not be written: .*netvol's folder \.netvol-hosts.*; check that backend nas is reachable from this host, then try again$/);
      expect(r.message).not.toMatch(/volume \.netvol-hosts/);
      expect(a.store.data.volumes.beatless).toBeUndefined();
    } finally {
      await fs.rm(hosts, { force: true });
    }
  });
});
