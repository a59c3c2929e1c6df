import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
/** netvolctl as users run it: the build. */
export const NETVOLCTL = path.join(__dirname, '..', '..', '..', 'dist', 'cli', 'index.js');

/** Runs netvolctl with `env` over this process's environment, without any NETVOL_CONFIG or NETVOL_ADMIN_SOCKET of its own. */
export async function netvolctl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.NETVOL_CONFIG;
  delete base.NETVOL_ADMIN_SOCKET;
  try {
    const { stdout, stderr } = await exec(process.execPath, [NETVOLCTL, ...args], { env: { ...base, ...env }, timeout: 170_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
