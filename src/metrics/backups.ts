/**
 * The last successful backup of each volume, as netvol_backup_last_success_timestamp_seconds shows
 * it. Kept in this process's memory: after a restart the gauge is absent until the next backup.
 */
const lastSuccess = new Map<string, { volume: string; backend: string; atSeconds: number }>();

/** A backup of `volume` on `backend` finished successfully (at `at`, default now). */
export function recordBackupSuccess(volume: string, backend: string, at: Date = new Date()): void {
  lastSuccess.set(`${backend}\u0000${volume}`, { volume, backend, atSeconds: at.getTime() / 1000 });
}

/** Every volume's last successful backup. */
export function backupSuccesses(): Iterable<{ volume: string; backend: string; atSeconds: number }> {
  return lastSuccess.values();
}

/** Forgets a volume's backups (it was removed). */
export function forgetBackups(volume: string, backend: string): void {
  lastSuccess.delete(`${backend}\u0000${volume}`);
}
