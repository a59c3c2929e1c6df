import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const CLI = path.join(__dirname, '..', '..', 'src', 'cli', 'index.ts');

// netvolctl runs from the build, as users run it; the test command always builds first.
const BUILT = path.join(__dirname, '..', '..', 'dist', 'cli', 'index.js');

async function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BUILT, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('netvolctl', () => {
  let dir: string;
  beforeAll(async () => {
    await fs.access(BUILT); // fails loudly if the build step was skipped
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvolctl-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('check-config names the bad key and exits non-zero', async () => {
    const file = path.join(dir, 'bad.yaml');
    await fs.writeFile(file, 'backends:\n  local: { type: local, path: relative/path }\n');
    const r = await ctl(['check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('backends.local.path');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('check-config prints the config with secrets redacted', async () => {
    const file = path.join(dir, 'ok.yaml');
    await fs.writeFile(file, `stateDir: ${dir}/state\nbackends:\n  local: { type: local, path: ${dir}/vols }\n`);
    const r = await ctl(['check-config', file]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).mountRoot).toBe(`${dir}/state/mounts`);
  });

  it('state shows a volume whose mount IDs are held but whose mountpoint is not mounted', async () => {
    const file = path.join(dir, 'ok.yaml');
    await fs.mkdir(path.join(dir, 'state'), { recursive: true });
    const meta = { version: 1, name: 'held', createdAt: '2026-01-01T00:00:00.000Z', createdBy: 'h', spec: { backend: 'local', layout: 'directory', onRemove: 'delete' } };
    const state = { version: 1, data: { volumes: { held: { backend: 'local', meta, mounts: { abc: 2 }, attached: true } } } };
    await fs.writeFile(path.join(dir, 'state', 'state.json'), JSON.stringify(state));
    const r = await ctl(['state', '-c', file, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { volumes: Array<{ name: string; count: number; kernelMounted: boolean; agrees: boolean }> };
    expect(out.volumes).toEqual([expect.objectContaining({ name: 'held', count: 2, kernelMounted: false, agrees: false })]);
  });
});
