import * as fs from 'node:fs';
import { World, startWorld, stopWorld } from './support/world';

jest.setTimeout(120_000);

/**
 * dockerd 20.10 passes any volume name and any -o option straight to the plugin (seen on this
 * machine: "x", "a/b", ".x", "a b", "-x" and 300-character names all reach VolumeDriver.Create), so
 * netvol's own rules are all that stand between a bad request and the backend.
 *
 * How the Err reaches the CLI depends on the HTTP status (seen with 20.10.24): a 200 with `Err`
 * shows as `create NAME: <Err>`; a non-200 with `{"Err"}` as `create NAME: VolumeDriver.Create: <Err>`,
 * which is what go-plugins-helpers plugins produce and what tells the user the plugin refused.
 */
describe('netvol refusals reach the docker CLI', () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld();
  }, 180_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 300_000);

  const backendFolders = (): string[] => fs.readdirSync(w.nv.localPath).filter((f) => !f.startsWith('.'));

  const refusedNames: Array<[string, string]> = [
    ['a single character', 'x'],
    ['a slash', 'a/b'],
    ['a leading dot', '.x'],
    ['a leading underscore', '_ab'],
    ['a space', 'a b'],
    ['a non-ASCII letter', 'é1'],
  ];

  test.each(refusedNames)('a name with %s (%j) is refused by netvol, naming the volume', async (_why, name) => {
    const r = await w.d.docker(['volume', 'create', '-d', w.plugin, name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`create ${name}: `);
    expect(r.stderr).toContain(`volume name "${name}" is not allowed`);
    expect(r.stderr).toMatch(/\[a-zA-Z0-9_.-\]/);
    expect(backendFolders()).toEqual([]);
  });

  test('a 300-character name is refused with its length and the limit', async () => {
    const name = 'a'.repeat(300);
    const r = await w.d.docker(['volume', 'create', '-d', w.plugin, name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('is 300 characters long');
    expect(r.stderr).toContain('255');
    expect(backendFolders()).toEqual([]);
  });

  test('the CLI shows a refusal as coming from VolumeDriver.Create, and dockerd got a non-200 answer', async () => {
    const r = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'bogus=1', 'opt-prefix']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('create opt-prefix: VolumeDriver.Create: volume opt-prefix: invalid option "bogus"');
    const raw = await w.nv.request('VolumeDriver.Create', { Name: 'opt-prefix', Opts: { bogus: '1' } });
    expect(raw.status).not.toBe(200);
    expect(raw.json?.Err).toContain('invalid option "bogus"');
  });

  test('a slash in a name creates nothing outside the backend folder', async () => {
    await w.d.docker(['volume', 'create', '-d', w.plugin, '../escape']);
    expect(fs.existsSync(`${w.nv.localPath}/../escape`)).toBe(false);
    expect(backendFolders()).toEqual([]);
  });

  test('-o bogus=1 is refused, naming the option and listing the accepted ones', async () => {
    const r = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'bogus=1', 'opt-bogus']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('create opt-bogus: ');
    expect(r.stderr).toContain('invalid option "bogus"');
    expect(r.stderr).toContain('volume opt-bogus');
    const accepted = /accepted options are (.*)$/m.exec(r.stderr);
    expect(accepted).not.toBeNull();
    for (const option of ['size', 'uid', 'gid', 'mode', 'backend']) expect(accepted![1]).toContain(option);
    expect(backendFolders()).toEqual([]);
  });

  test('-o size=lots is refused, naming the option, the value and the expected form', async () => {
    const r = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'size=lots', 'opt-size']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('create opt-size: ');
    expect(r.stderr).toContain('option "size"');
    expect(r.stderr).toContain('"lots"');
    expect(r.stderr).toMatch(/512M|10G/);
    expect(backendFolders()).toEqual([]);
  });

  test('-o mode=999 and -o uid=me are refused with what each option expects', async () => {
    const mode = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'mode=999', 'opt-mode']);
    expect(mode.code).not.toBe(0);
    expect(mode.stderr).toContain('option "mode"');
    expect(mode.stderr).toMatch(/octal/);
    const uid = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'uid=me', 'opt-uid']);
    expect(uid.code).not.toBe(0);
    expect(uid.stderr).toContain('"uid"');
    expect(uid.stderr).toContain('"me"');
    expect(backendFolders()).toEqual([]);
  });

  test('an option that looks like a credential is refused and its value is never echoed', async () => {
    const r = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'password=hunter2-e2e', 'opt-secret']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('"password"');
    expect(r.stderr).not.toContain('hunter2-e2e');
    expect(w.nv.logs.join('\n')).not.toContain('hunter2-e2e');
  });

  test('no refused request left a volume in docker volume ls', async () => {
    const ls = await w.d.dockerOk(['volume', 'ls', '-q', '--filter', `driver=${w.plugin}`]);
    expect(ls).toBe('');
    const list = await w.nv.request('VolumeDriver.List', {});
    expect(list.json?.Volumes ?? []).toEqual([]);
  });
});
