import { openSync, closeSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log';
import { isAlive, spawnDetached, waitForExit } from '../system';
import type { Handover } from './presence';

/**
 * The caretaker keeps this host's heartbeat on a shared backend while the daemon is stopped (an
 * upgrade, `systemctl restart`): the volumes' data path outlives the daemon, so their attachments
 * and image leases must too, and fencing must still happen if the heartbeat cannot be renewed. A
 * stopping daemon hands its holds to one caretaker process per backend; a starting daemon ends
 * them before its own first heartbeat. (A daemon killed outright hands nothing over: systemd
 * restarts it within a second, well inside the lease.)
 */
export const CARETAKER_JS = path.join(__dirname, '..', 'caretaker.js');

const handoverFile = (stateDir: string, backend: string) => path.join(stateDir, `caretaker-${backend}.json`);
const pidFile = (stateDir: string, backend: string) => path.join(stateDir, `caretaker-${backend}.pid`);
const logFile = (stateDir: string, backend: string) => path.join(stateDir, `caretaker-${backend}.log`);

/** Starts one caretaker per handover, detached so it outlives this process. */
export async function startCaretakers(stateDir: string, configFile: string | undefined, handovers: Handover[], log: Logger): Promise<void> {
  for (const h of handovers) {
    const file = handoverFile(stateDir, h.backend);
    try {
      await fs.writeFile(file, JSON.stringify(h), { mode: 0o600 });
      const fd = openSync(logFile(stateDir, h.backend), 'a', 0o600);
      const args = [CARETAKER_JS, '--backend', h.backend, '--handover', file, ...(configFile ? ['--config', path.resolve(configFile)] : [])];
      let pid: number;
      try {
        pid = spawnDetached(process.execPath, args, { stdoutFd: fd });
      } finally {
        closeSync(fd);
      }
      await fs.writeFile(pidFile(stateDir, h.backend), `${pid}\n`, { mode: 0o600 });
      log.info('a caretaker keeps this host\'s heartbeat on the backend while netvol is stopped', { backend: h.backend, pid, volumes: Object.keys(h.holds) });
    } catch (err) {
      log.error('cannot start the caretaker: attachments on this backend expire after leaseSeconds unless netvol comes back', { backend: h.backend, error: (err as Error).message });
    }
  }
}

/** Ends the caretakers a previous daemon started (only processes that are verifiably ours), and waits for them to exit. */
export async function stopCaretakers(stateDir: string, log: Logger): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(stateDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const m = /^caretaker-(.+)\.pid$/.exec(entry);
    if (!m) continue;
    const backend = m[1];
    const pid = Number((await fs.readFile(path.join(stateDir, entry), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 1 && isAlive(pid) && (await isCaretakerOf(pid, handoverFile(stateDir, backend)))) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      await waitForExit([pid], 5000, 'SIGKILL');
      for (let i = 0; i < 40 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      log.info('ended the caretaker that kept this host\'s heartbeat while netvol was stopped', { backend, pid, ended: !isAlive(pid) });
    }
    await fs.rm(path.join(stateDir, entry), { force: true });
    await fs.rm(handoverFile(stateDir, backend), { force: true });
  }
}

async function isCaretakerOf(pid: number, handover: string): Promise<boolean> {
  try {
    const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return argv.some((a) => a.endsWith('caretaker.js')) && argv.includes(handover);
  } catch {
    return false;
  }
}
