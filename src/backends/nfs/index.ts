import { FolderBackend } from '../folder/folder-backend';
import type { BackendType } from '../types';
import { NfsDataPath } from './nfs-data-path';
import { NfsTree } from './nfs-tree';
import { folderInExport, NfsOptions, nfsOptionsSchema } from './options';

export type { NfsOptions } from './options';
export { kernelMountArgs, resolveMounter } from './mounters';

const capabilities = Object.freeze({ networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true, symlinkAttributes: true });

/**
 * Volumes in a folder of an NFS export. Control goes through netvol's own NFSv3 client over one
 * connection, without mounting anything; data through the kernel's NFS client or a FUSE server
 * over the same library (see `mounter`).
 */
export const nfsBackendType = {
  type: 'nfs',
  description: "volumes on an NFS export: control through netvol's own NFSv3 client, data through the kernel's NFS client or a userspace FUSE server",
  capabilities,
  optionsSchema: nfsOptionsSchema,
  secrets: () => [],
  create: (options, ctx) => {
    const target = { host: options.server, exportPath: options.export, port: options.port, mountPort: options.mountPort, uid: options.uid, gid: options.gid };
    const folder = folderInExport(options.path);
    const common = { backend: ctx.name, target, folder, timeoutMs: ctx.timeoutMs, logger: ctx.logger };
    return new FolderBackend({ type: 'nfs', capabilities, tree: new NfsTree(common), dataPath: new NfsDataPath({ ...common, options }) }, ctx);
  },
} satisfies BackendType<NfsOptions>;
