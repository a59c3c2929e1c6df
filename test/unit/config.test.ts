import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildConfig, loadConfig } from '../../src/config';
import { isNetvolError } from '../../src/errors';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isNetvolError(err, 'CONFIG')) return err.message;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

async function refusalAsync(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (err) {
    if (isNetvolError(err, 'CONFIG')) return err.message;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

describe('daemon configuration', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-config-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('buildConfig() of nothing gives the built-in default: one local backend under /var/lib/netvol', () => {
    const c = buildConfig(undefined, 'defaults', {});
    expect(c).toMatchObject({
      socket: '/run/docker/plugins/netvol.sock',
      stateDir: '/var/lib/netvol',
      mountRoot: '/var/lib/netvol/mounts',
      logLevel: 'info',
      scope: 'auto',
      defaultBackend: 'local',
      hostId: os.hostname(),
      timeoutMs: 20_000,
    });
    expect(c.backends).toEqual([{ name: 'local', type: 'local', allowOvercommit: false, leaseSeconds: 30, options: { path: '/var/lib/netvol/volumes' } }]);
  });

  it('loadConfig() without a file uses the built-in default', async () => {
    const c = await loadConfig(undefined, {});
    expect(c.backends.map((b) => `${b.name}:${b.type}`)).toEqual(['local:local']);
    expect(c.defaultBackend).toBe('local');
  });

  it('mountRoot follows stateDir unless given', () => {
    expect(buildConfig({ stateDir: '/srv/nv' }, 't', {}).mountRoot).toBe('/srv/nv/mounts');
    expect(buildConfig({ stateDir: '/srv/nv', mountRoot: '/mnt/nv' }, 't', {}).mountRoot).toBe('/mnt/nv');
  });

  it('refuses an unknown top-level key, naming it and the source', () => {
    const message = refusal(() => buildConfig({ sockt: '/x.sock' }, 'conf.yaml', {}));
    expect(message).toContain('invalid configuration in conf.yaml');
    expect(message).toContain('sockt');
  });

  it('refuses an unknown key inside a backend with its path', () => {
    const message = refusal(() => buildConfig({ backends: { local: { type: 'local', path: '/v', colour: 'red' } } }, 'conf.yaml', {}));
    expect(message).toContain('backends.local');
    expect(message).toContain('colour');
  });

  it('refuses a bad value with the key path', () => {
    expect(refusal(() => buildConfig({ scope: 'planet' }, 'c', {}))).toContain('scope: must be one of auto, local, global');
    expect(refusal(() => buildConfig({ socket: 'relative.sock' }, 'c', {}))).toContain('socket:');
    expect(refusal(() => buildConfig({ backends: { local: { type: 'local', path: 'rel' } } }, 'c', {}))).toContain('backends.local.path: must be an absolute path');
  });

  it('refuses a hostId that cannot name a heartbeat file, and a leaseSeconds beyond dockerd\'s patience', () => {
    expect(refusal(() => buildConfig({ hostId: 'a'.repeat(201) }, 'c', {}))).toContain('hostId: use at most 200 letters');
    expect(refusal(() => buildConfig({ hostId: 'node/1' }, 'c', {}))).toContain('hostId:');
    expect(refusal(() => buildConfig({ backends: { local: { type: 'local', path: '/x', leaseSeconds: 41 } } }, 'c', {}))).toContain('backends.local.leaseSeconds');
    expect(buildConfig({ hostId: 'node-1.example', backends: { local: { type: 'local', path: '/x', leaseSeconds: 40 } } }, 'c', {}).backends[0].leaseSeconds).toBe(40);
  });

  it.each<[string, unknown, string]>([
    ['enum', { scope: 'planet' }, 'invalid configuration in c: scope: must be one of auto, local, global'],
    ['enum in a backend', { backends: { n: { type: 'nfs', server: 'h', export: '/e', mounter: 'fast' } } }, 'backends.n.mounter: must be one of auto, kernel, userspace'],
    ['number range', { timeoutSeconds: 90 }, 'invalid configuration in c: timeoutSeconds: must be at most 50'],
    ['number range', { timeoutSeconds: 0 }, 'invalid configuration in c: timeoutSeconds: must be more than 0'],
    ['whole number', { backends: { local: { type: 'local', path: '/x', leaseSeconds: 7.5 } } }, 'backends.local.leaseSeconds: must be a whole number'],
    ['type', { timeoutSeconds: '20' }, 'invalid configuration in c: timeoutSeconds: must be a number, not text'],
    ['type', { backends: { local: { type: 'local', path: '/x', allowOvercommit: 'yes' } } }, 'backends.local.allowOvercommit: must be true or false, not text'],
    ['string format', { socket: 'relative.sock' }, 'invalid configuration in c: socket: must start with "/"'],
    ['missing key', { backends: { s: { type: 'sftp', host: 'h', password: 'pw12345', insecureSkipHostKeyCheck: true, path: '/p' } } }, 'backends.s.username: is required'],
    ['empty string', { backends: { s: { type: 'sftp', host: '', username: 'u', password: 'pw12345', insecureSkipHostKeyCheck: true, path: '/p' } } }, 'backends.s.host: must not be empty'],
    ['unknown key', { sockt: '/x.sock' }, 'invalid configuration in c: unknown key "sockt"; accepted keys are socket, stateDir, mountRoot, logLevel, scope, defaultBackend, hostId, dockerHost, adminSocket, metrics, timeoutSeconds, backends'],
    ['unknown key in a backend', { backends: { local: { type: 'local', path: '/v', colour: 'red' } } }, 'invalid configuration in c: backends.local: unknown key "colour"; accepted keys are type, allowOvercommit, leaseSeconds, path'],
    ['bad backend name', { backends: { Big: { type: 'local', path: '/v' } } }, 'invalid configuration in c: backends.Big: invalid name "Big": backend names use a-z, 0-9, "_" and "-"'],
    ['map expected', { backends: ['local'] }, 'invalid configuration in c: backends: must be a map, not a list'],
    ['document not a map', 'just text', 'invalid configuration in c: the configuration must be a map of settings, not text'],
  ])('a bad %s reads as our sentence with the key path (%j)', (_kind, doc, expected) => {
    const message = refusal(() => buildConfig(doc, 'c', {}));
    expect(message).toContain(expected);
    expect(message).not.toMatch(/Invalid (input|option|string|key)|expected |received |Too (big|small)|Unrecognized|\|"|"\||\(top level\)/);
  });

  it('refuses an unknown backend type, listing the known types', () => {
    const message = refusal(() => buildConfig({ backends: { s3: { type: 'bucket' } } }, 'c', {}));
    expect(message).toContain('backends.s3.type: unknown backend type "bucket"');
    expect(message).toMatch(/known types are .*local/);
  });

  it('refuses a defaultBackend that is not configured, listing those that are', () => {
    const message = refusal(() => buildConfig({ defaultBackend: 'nas', backends: { local: { type: 'local', path: '/v' } } }, 'c', {}));
    expect(message).toContain('defaultBackend: "nas" is not one of the configured backends (local)');
  });

  it('refuses an empty backends map', () => {
    expect(refusal(() => buildConfig({ backends: {} }, 'c', {}))).toContain('configure at least one backend');
  });

  it('picks the first backend as default when none is named local', () => {
    const c = buildConfig({ backends: { fast: { type: 'local', path: '/a' }, slow: { type: 'local', path: '/b' } } }, 'c', {});
    expect(c.defaultBackend).toBe('fast');
  });

  it('loadConfig() reads a YAML file', async () => {
    const file = path.join(dir, 'netvol.yaml');
    await fs.writeFile(file, ['socket: /tmp/nv-yaml.sock', 'stateDir: /srv/netvol', 'logLevel: debug', 'scope: global', 'backends:', '  disk:', '    type: local', '    path: /srv/vols', ''].join('\n'));
    const c = await loadConfig(file, {});
    expect(c).toMatchObject({ socket: '/tmp/nv-yaml.sock', stateDir: '/srv/netvol', logLevel: 'debug', scope: 'global', defaultBackend: 'disk' });
    expect(c.backends[0]).toMatchObject({ name: 'disk', type: 'local', options: { path: '/srv/vols' } });
  });

  it('loadConfig() reads a JSON file', async () => {
    const file = path.join(dir, 'netvol.json');
    await fs.writeFile(file, JSON.stringify({ timeoutSeconds: 5, backends: { local: { type: 'local', path: '/srv/j', allowOvercommit: true } } }));
    const c = await loadConfig(file, {});
    expect(c.timeoutMs).toBe(5000);
    expect(c.backends[0]).toMatchObject({ name: 'local', allowOvercommit: true, options: { path: '/srv/j' } });
  });

  it('loadConfig() names the file and the problem when it cannot be read or parsed', async () => {
    const missing = path.join(dir, 'missing.yaml');
    expect(await refusalAsync(loadConfig(missing, {}))).toContain(`invalid configuration in ${missing}: cannot read the file (ENOENT)`);
    const bad = path.join(dir, 'bad.yaml');
    await fs.writeFile(bad, 'backends: [unclosed\n');
    expect(await refusalAsync(loadConfig(bad, {}))).toContain('not valid YAML or JSON');
  });

  it('NETVOL_SOCKET overrides the socket of the file and of the default', async () => {
    const file = path.join(dir, 'sock.yaml');
    await fs.writeFile(file, 'socket: /tmp/from-file.sock\n');
    expect((await loadConfig(file, { NETVOL_SOCKET: '/tmp/from-env.sock' })).socket).toBe('/tmp/from-env.sock');
    expect((await loadConfig(undefined, { NETVOL_SOCKET: '/tmp/from-env.sock' })).socket).toBe('/tmp/from-env.sock');
  });

  it('NETVOL_LOG_LEVEL overrides logLevel, and a bad value is refused naming the variable', () => {
    expect(buildConfig({ logLevel: 'warn' }, 'c', { NETVOL_LOG_LEVEL: 'debug' }).logLevel).toBe('debug');
    expect(refusal(() => buildConfig({}, 'c', { NETVOL_LOG_LEVEL: 'chatty' }))).toContain('NETVOL_LOG_LEVEL: "chatty" is not one of error, warn, info, debug');
  });

  it('the config, its backend list and each backend are frozen', () => {
    const c = buildConfig({}, 'c', {});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.backends)).toBe(true);
    expect(Object.isFrozen(c.backends[0])).toBe(true);
    expect(Object.isFrozen(c.backends[0].options)).toBe(true);
    expect(() => {
      (c as { socket: string }).socket = '/evil.sock';
    }).toThrow(TypeError);
    expect(c.socket).toBe('/run/docker/plugins/netvol.sock');
  });
});
