import { z } from 'zod';

const port = z.number().int().min(1).max(65535);
const id = z.number().int().min(0).max(4294967294);

/**
 * The `nfs` backend block of the daemon config (without `type`). Control operations always use
 * netvol's own NFSv3 client; `mounter` chooses the data path: the kernel's NFS client (`mount -t
 * nfs`), netvol's FUSE server over the same client library (`userspace`), or whichever this host
 * can do (`auto`: kernel when /proc/filesystems lists nfs).
 */
export const nfsOptionsSchema = z
  .strictObject({
    /** Host name or address of the NFS server. */
    server: z.string().min(1).regex(/^[A-Za-z0-9._-]+$|^\[?[0-9a-fA-F:.]+\]?$/, 'must be a host name, an IPv4 address or an IPv6 address'),
    /** The exported directory, as the server's MOUNT service names it. */
    export: z.string().startsWith('/', 'must be an absolute path, as the server exports it'),
    /** Folder inside the export holding one sub-folder per volume ("" or "/" for the export root). Created at start if missing. */
    path: z
      .string()
      .default('')
      .refine((p) => !p.split('/').some((part) => part === '..'), 'must not contain ".."'),
    /** NFS port; asked of the server's portmapper (port 111) when omitted. */
    port: port.optional(),
    /** MOUNT port; asked of the portmapper when omitted. */
    mountPort: port.optional(),
    mounter: z.enum(['auto', 'kernel', 'userspace']).default('auto'),
    /** NFS version of the data path: 3 for userspace, 3 or 4 for the kernel. */
    version: z.union([z.literal(3), z.literal(4)]).default(3),
    /** Extra `-o` options for the kernel mounter (e.g. ["hard", "timeo=600"]). */
    mountOptions: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(=[^,\s]*)?$/, 'must be one option such as name or name=value')).default([]),
    /** AUTH_SYS identity sent to the server (default root, which needs no_root_squash to manage volumes of other owners). */
    uid: id.default(0),
    gid: id.default(0),
  })
  .refine((o) => !(o.mounter === 'userspace' && o.version !== 3), {
    message: 'the userspace mounter speaks NFS version 3 only: set version: 3, or mounter: kernel for version 4',
    path: ['version'],
  })
  .refine((o) => o.mounter === 'kernel' || o.mountOptions.length === 0 || o.mounter === 'auto', {
    message: 'mountOptions apply to the kernel mounter only',
    path: ['mountOptions'],
  });

export type NfsOptions = z.infer<typeof nfsOptionsSchema>;

/** The folder inside the export, without leading or trailing slashes ("" for the export root). */
export function folderInExport(path: string): string {
  return path.split('/').filter((p) => p !== '' && p !== '.').join('/');
}
