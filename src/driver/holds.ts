import { randomBytes } from 'node:crypto';

/**
 * Mount IDs of admin holds (see admin-api.ts VolumeHold): `netvol-admin.<purpose>.<run>.<n>`, where
 * <run> is random per daemon run — one VolumeDriver (a pid would repeat: a managed plugin's daemon
 * is always pid 1; a module-wide id would not change when a driver is built anew in one process).
 * At start, holds of earlier runs are released: the operation that took them died with its daemon.
 */
const PREFIX = 'netvol-admin.';
let counter = 0;

/** A fresh run id, once per VolumeDriver. */
export function newRunId(): string {
  return randomBytes(4).toString('hex');
}

export function adminMountId(purpose: string, run: string): string {
  const safe = purpose.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 32) || 'op';
  counter += 1;
  return `${PREFIX}${safe}.${run}.${counter}`;
}

export function isAdminMountId(id: string): boolean {
  return id.startsWith(PREFIX);
}

/** An admin hold taken by another daemon run than `run` (this one). */
export function isEarlierAdminHold(id: string, run: string): boolean {
  if (!isAdminMountId(id)) return false;
  const parts = id.split('.');
  return parts.length < 4 || parts[parts.length - 2] !== run;
}
