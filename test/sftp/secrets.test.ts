/**
 * A password-authenticated sftp backend through a full scenario, good and bad paths; then the
 * password is looked for everywhere netvol writes or answers: logs, state dir, Err texts, Status.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mountsUnder } from '../harness/dockerd';
import type { Netvol } from '../harness/netvol';
import { startSshd, Sshd } from '../harness/sshd';
import { call, ok, startSftpNetvol } from './support/daemon';

jest.setTimeout(180_000);

let sshd: Sshd;
let nv: Netvol;
const answers: string[] = [];

/** Every file below `dir` (not following links, not entering mounts), with its content. */
function filesBelow(dir: string): Array<{ file: string; text: string }> {
  const mounted = new Set(mountsUnder(dir).map((m) => m.mountPoint));
  const out: Array<{ file: string; text: string }> = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (mounted.has(full)) continue;
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) out.push({ file: full, text: fs.readFileSync(full, 'latin1') });
    }
  };
  walk(dir);
  return out;
}

async function record(method: string, body: unknown): Promise<Record<string, unknown>> {
  const json = await call(nv, method, body);
  answers.push(JSON.stringify(json));
  return json;
}

beforeAll(async () => {
  sshd = await startSshd();
  nv = await startSftpNetvol(sshd, {
    backend: { privateKeyFile: undefined, password: sshd.password },
    timeoutSeconds: 10,
  });
}, 60_000);

afterAll(async () => {
  await nv?.cleanup();
  await sshd?.cleanup();
}, 60_000);

test('the backend password appears in no log line, state file, Err text or Status after a full scenario', async () => {
  const pw = sshd.password;
  // Good paths: directory and image volumes, mounted, written, listed, removed.
  await ok(nv, 'VolumeDriver.Create', { Name: 'sec-dir', Opts: {} });
  await ok(nv, 'VolumeDriver.Create', { Name: 'sec-img', Opts: { size: '32M' } });
  const d = await ok(nv, 'VolumeDriver.Mount', { Name: 'sec-dir', ID: 'm1' });
  const i = await ok(nv, 'VolumeDriver.Mount', { Name: 'sec-img', ID: 'm2' });
  fs.writeFileSync(path.join(d.Mountpoint, 'f'), 'x');
  fs.writeFileSync(path.join(i.Mountpoint, 'f'), 'y');
  answers.push(JSON.stringify(await record('VolumeDriver.Get', { Name: 'sec-dir' })));
  answers.push(JSON.stringify(await record('VolumeDriver.Get', { Name: 'sec-img' })));
  answers.push(JSON.stringify(await record('VolumeDriver.List', {})));
  // The daemon restarts with sshfs mounts live and finds them again (it logs what it finds).
  await nv.restart();
  expect((await record('VolumeDriver.Get', { Name: 'sec-img' })).Volume).toMatchObject({ Status: { healthy: true } });

  // Bad paths: credentials as options, the password as a bad value, a server that is down.
  const asOption = await record('VolumeDriver.Create', { Name: 'sec-bad', Opts: { password: pw } });
  expect(asOption.Err).toMatch(/credentials never go in volume options/);
  const asValue = await record('VolumeDriver.Create', { Name: 'sec-bad2', Opts: { size: pw } });
  expect(asValue.Err).toMatch(/invalid value/);
  await sshd.stop();
  try {
    // An attached directory volume stays usable for a new container: its sshfs reconnects later.
    const down = await record('VolumeDriver.Mount', { Name: 'sec-dir', ID: 'm3' });
    expect(down.Err ?? '').toBe('');
    const createDown = await record('VolumeDriver.Create', { Name: 'sec-new', Opts: {} });
    expect(createDown.Err).toMatch(/backend remote/);
  } finally {
    await sshd.restart();
  }
  for (const [name, id] of [['sec-dir', 'm1'], ['sec-dir', 'm3'], ['sec-img', 'm2']]) await ok(nv, 'VolumeDriver.Unmount', { Name: name, ID: id });
  await ok(nv, 'VolumeDriver.Remove', { Name: 'sec-dir' });
  await ok(nv, 'VolumeDriver.Remove', { Name: 'sec-img' });
  await nv.stop();

  // The scenario really ran and answered.
  expect(answers.length).toBeGreaterThanOrEqual(8);
  const logText = fs.readFileSync(nv.logFile, 'utf8');
  expect(logText).toMatch(/sshfs attached/);
  const stateFiles = filesBelow(nv.stateDir);
  expect(stateFiles.some((f) => f.file.endsWith('state.json'))).toBe(true);
  expect(stateFiles.some((f) => f.file.includes(`${path.sep}.logs${path.sep}`))).toBe(true);

  expect(logText).not.toContain(pw);
  for (const f of stateFiles) expect({ file: f.file, leaks: f.text.includes(pw) }).toEqual({ file: f.file, leaks: false });
  for (const a of answers) expect(a).not.toContain(pw);
  // No sshfs ever carried it in its argv either (checked while they ran, via the sshfs log of ssh's command line).
  const sshfsLogs = stateFiles.filter((f) => f.file.endsWith('.log')).map((f) => f.text).join('\n');
  expect(sshfsLogs).not.toContain(pw);
});
