import { readFileSync } from 'node:fs';

/** Running, and not a zombie waiting for a reaper (detached helpers are re-parented to PID 1). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** Waits up to `ms` for `pids` to exit, then sends `signal` to those still running. */
export async function waitForExit(pids: number[], ms: number, signal: NodeJS.Signals): Promise<void> {
  const deadline = Date.now() + ms;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    alive = alive.filter(isAlive);
  }
  for (const pid of alive) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
