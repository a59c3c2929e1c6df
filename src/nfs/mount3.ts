// MOUNT protocol version 3 (RFC 1813 §5): turn an export path into the root
// file handle, release it, and list exports.

import { RpcClient } from './rpc-client';
import { NfsError } from './errors';

export const MOUNT_PROGRAM = 100005;
export const MOUNT_VERSION = 3;

const PROC_MNT = 1;
const PROC_UMNT = 3;
const PROC_EXPORT = 5;

const MNTPATHLEN = 1024;
const FHSIZE3 = 64;

export interface MountResult {
  /** Root file handle of the export. */
  handle: Buffer;
  /** Authentication flavors the server accepts for this export. */
  authFlavors: number[];
}

export interface ExportEntry {
  path: string;
  groups: string[];
}

export async function mnt(rpc: RpcClient, path: string): Promise<MountResult> {
  const r = await rpc.call(MOUNT_PROGRAM, MOUNT_VERSION, PROC_MNT, (w) => w.string(path), { name: 'MOUNT3.MNT' });
  const status = r.uint32();
  if (status !== 0) throw new NfsError(status, 'MOUNT3.MNT', `export ${JSON.stringify(path)}`);
  const handle = Buffer.from(r.opaque(FHSIZE3));
  const authFlavors = r.array((x) => x.uint32());
  return { handle, authFlavors };
}

export async function umnt(rpc: RpcClient, path: string): Promise<void> {
  await rpc.call(MOUNT_PROGRAM, MOUNT_VERSION, PROC_UMNT, (w) => w.string(path), { name: 'MOUNT3.UMNT' });
}

export async function exportList(rpc: RpcClient): Promise<ExportEntry[]> {
  const r = await rpc.call(MOUNT_PROGRAM, MOUNT_VERSION, PROC_EXPORT, undefined, { name: 'MOUNT3.EXPORT' });
  const out: ExportEntry[] = [];
  while (r.bool()) {
    const path = r.string(MNTPATHLEN);
    const groups: string[] = [];
    while (r.bool()) groups.push(r.string(255));
    out.push({ path, groups });
  }
  return out;
}
