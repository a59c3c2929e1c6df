/**
 * Swarm places a task that uses netvol on a node whose dockerd has never used netvol, once netvol
 * has announced itself (src/plugin/announce.ts). Before that, dockerd does not report the legacy
 * plugin and the task stays Pending with "missing plugin on 1 node" (moby#23619).
 *
 * No `docker volume …` command runs against this dockerd before the task must be Running: any of
 * them would make dockerd use the plugin and hide the problem.
 *
 * Until the daemon config has a `dockerHost` key, the test calls announceToDocker() itself against
 * the private dockerd, right after netvol listens, as netvol's main will.
 */
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log';
import { Announcement, announceToDocker } from '../../src/plugin/announce';
import { sleep, waitFor } from '../harness/dockerd';
import { BUSYBOX_IMAGE, World, startWorld, stopWorld, uniqueName } from './support/world';

jest.setTimeout(180_000);

describe('swarm places a task on a node whose dockerd has not used netvol yet', () => {
  let w: World;
  let inSwarm = false;
  const service = uniqueName('nvswarm');
  const volume = uniqueName('swarmvol');
  let announcement: Announcement | undefined;
  const announceLog: string[] = [];

  /** `CurrentState|Error` of the service's newest task. */
  const taskState = async (): Promise<string> =>
    (await w.d.dockerOk(['service', 'ps', '--no-trunc', '--format', '{{.CurrentState}}|{{.Error}}', service])).split('\n')[0] ?? '';
  const dockerdVolumePlugins = async (): Promise<string[]> =>
    JSON.parse(await w.d.dockerOk(['info', '--format', '{{json .Plugins.Volume}}'])) as string[];

  beforeAll(async () => {
    w = await startWorld();
    // A port of its own: another swarm on this machine may hold 2377.
    for (let tries = 0; !inSwarm && tries < 5; tries++) {
      const addr = `127.0.0.1:${20000 + Math.floor(Math.random() * 20000)}`;
      const r = await w.d.docker(['swarm', 'init', '--advertise-addr', addr, '--listen-addr', addr]);
      if (r.code === 0) inSwarm = true;
      else if (!/address already in use/.test(r.stderr)) throw new Error(`docker swarm init: ${r.stderr}`);
    }
    if (!inSwarm) throw new Error('docker swarm init: no free port found');
  }, 180_000);

  afterAll(async () => {
    announcement?.stop();
    if (w && inSwarm) {
      await w.d.docker(['service', 'rm', service]).catch(() => undefined);
      await waitFor('the service\'s containers to go', async () => (await w.d.dockerOk(['ps', '-aq'])) === '', 30_000, 500).catch(() => undefined);
      await w.d.docker(['swarm', 'leave', '--force']).catch(() => undefined);
    }
    await stopWorld(w);
  }, 300_000);

  test('without an announcement the task stays Pending with "missing plugin on 1 node"', async () => {
    await w.d.dockerOk([
      'service', 'create', '--detach', '--no-resolve-image', '--name', service, '--network', 'host',
      '--mount', `type=volume,source=${volume},target=/d,volume-driver=${w.plugin}`,
      BUSYBOX_IMAGE, 'sleep', '600',
    ]);
    // Longer than swarmkit's 20 s node description refresh: waiting alone does not help.
    await sleep(30_000);
    const state = await taskState();
    expect(state).toMatch(/^Pending/);
    expect(state).toContain('missing plugin on 1 node');
    expect(await dockerdVolumePlugins()).not.toContain(w.plugin);
  });

  test('once netvol announces itself, dockerd lists it and the task is Running within 60 s', async () => {
    const started = Date.now();
    announcement = announceToDocker({
      dockerHost: w.d.host,
      pluginName: w.plugin,
      logger: createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (announceLog.push(c.toString()), cb()) })),
    });
    expect(await announcement.first).toBe(true);
    expect(await dockerdVolumePlugins()).toContain(w.plugin);
    await waitFor('the task to run', async () => /^Running/.test(await taskState()), 60_000, 1000).catch((err: Error) => {
      throw new Error(`${err.message}; last state after ${Date.now() - started} ms: see \`docker service ps\`\n${w.d.logTail(20)}`);
    });
    // The task's volume is netvol's, created on this node by swarm.
    const got = await w.nv.request('VolumeDriver.Get', { Name: volume });
    expect(got.json?.Err ?? '').toBe('');
    expect(got.json?.Volume?.Name).toBe(volume);
  });

  test('after dockerd restarts, netvol announces itself again', async () => {
    // Nothing of netvol's may stay in dockerd's records, or its start-up would use the plugin anyway.
    await w.d.dockerOk(['service', 'rm', service]);
    await waitFor('the service\'s containers to go', async () => (await w.d.dockerOk(['ps', '-aq'])) === '', 60_000, 500);
    await w.d.dockerOk(['volume', 'rm', volume]);
    await w.d.restart();
    await waitFor('dockerd to list netvol again', async () => (await dockerdVolumePlugins()).includes(w.plugin), 30_000, 500);
    expect(announceLog.join('')).toContain('dockerd went away');
  });
});
