/**
 * netvolctl on a host where netvol runs as a managed plugin: the host's netvolctl reaches the
 * plugin's admin socket through the state folder the plugin bind-mounts at the same path, and
 * packaging/netvolctl-plugin runs the plugin's own netvolctl in its mount namespace (a host
 * without Node).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DOCKER_CLI, Dockerd, removeTree, run, startDockerd, waitFor } from '../harness/dockerd';
import { netvolctl } from '../e2e/support/netvolctl';
import { buildPlugin, detachLoopsBackedBy, fileIdentity, REPO, VERSION } from './support/plugin';

jest.setTimeout(180_000);

const RUN = crypto.randomBytes(4).toString('hex');
const PLUGIN = `netvol-c${RUN}:${VERSION}`;
const VOLUME = `c${RUN}-img`;
let d: Dockerd;
let work: string;
let stateDir: string;
const images = new Set<string>();

beforeAll(async () => {
  work = fs.mkdtempSync('/tmp/nvc-');
  stateDir = path.join(work, 'state');
  fs.mkdirSync(stateDir);
  fs.mkdirSync(path.join(work, 'config'));
  d = await startDockerd();
  const built = await buildPlugin(d, PLUGIN, 40 * 60_000);
  process.stdout.write(`plugin tier: scripts/plugin-build.sh took ${built.seconds.toFixed(0)} s\n`);
  await d.dockerOk(['plugin', 'set', PLUGIN, `state.source=${stateDir}`, `config.source=${path.join(work, 'config')}`]);
  await d.dockerOk(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
  await d.dockerOk(['volume', 'create', '-d', PLUGIN, '-o', 'size=32M', VOLUME]);
  images.add(fileIdentity(path.join(stateDir, 'volumes', VOLUME, 'data.img')));
}, 45 * 60_000);

afterAll(async () => {
  if (d) {
    await d.docker(['volume', 'rm', '-f', VOLUME]).catch(() => undefined);
    await d.docker(['plugin', 'disable', '-f', PLUGIN]).catch(() => undefined);
    await d.docker(['plugin', 'rm', '-f', PLUGIN]).catch(() => undefined);
    await d.stop();
  }
  detachLoopsBackedBy(images);
  if (work) removeTree(work);
}, 300_000);

test('the plugin\'s admin socket shows on the host in its state folder, root-only, and the host\'s netvolctl lists the plugin\'s volumes through it', async () => {
  const socket = path.join(stateDir, 'admin.sock');
  await waitFor('the plugin\'s admin socket', () => fs.existsSync(socket) || undefined, 30_000);
  const st = fs.lstatSync(socket);
  expect(st.isSocket()).toBe(true);
  expect(st.mode & 0o777).toBe(0o600);
  expect(st.uid).toBe(0);
  const r = await netvolctl(['ls', '--socket', socket, '--json']);
  expect(r.stderr).toBe('');
  const { volumes } = JSON.parse(r.stdout) as { volumes: Array<{ name: string; layout: string; sizeBytes: number }> };
  expect(volumes).toContainEqual(expect.objectContaining({ name: VOLUME, layout: 'image', sizeBytes: 32 * 1024 * 1024 }));
});

test('packaging/netvolctl-plugin runs the plugin\'s own netvolctl, which finds the socket at its default path', async () => {
  const script = path.join(REPO, 'packaging', 'netvolctl-plugin');
  expect(fs.statSync(script).mode & 0o111).toBe(0o111);
  const r = await run(script, ['inspect', VOLUME, '--json'], { env: { ...process.env, DOCKER: DOCKER_CLI, DOCKER_HOST: d.host, NETVOL_PLUGIN: PLUGIN }, timeoutMs: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ name: VOLUME, state: 'live', layout: 'image' });
  const missing = await run(script, ['ls'], { env: { ...process.env, DOCKER: DOCKER_CLI, DOCKER_HOST: d.host, NETVOL_PLUGIN: 'no-such-plugin:1' }, timeoutMs: 60_000 });
  expect(missing.code).not.toBe(0);
});
