import { randomBytes } from 'node:crypto';

/**
 * Mount IDs of admin holds (see admin-api.ts VolumeHold): `netvol-admin.<purpose>.<run>.<n>`, where
 * <run> is random per daemon process (a pid would repeat: a managed plugin's daemon is always pid
 * 1). At start, holds of earlier runs are released: the operation that took them died with its daemon.
 */
const PREFIX = 'netvol-admin.';
const RUN = randomBytes(4).toString('hex');
let counter = 0;

export function adminMountId(purpose: string): string {
  const safe = purpose.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 32) || 'op';
  counter += 1;
  return `${PREFIX}${safe}.${RUN}.${counter}`;
}

export function isAdminMountId(id: string): boolean {
  return id.startsWith(PREFIX);
}

/** An admin hold taken by an earlier daemon run than this one. */
export function isEarlierAdminHold(id: string): boolean {
  if (!isAdminMountId(id)) return false;
  const parts = id.split('.');
  return parts.length < 4 || parts[parts.length - 2] !== RUN;
}
