import type { BackendType } from '../types';
import { NfsBackend } from './nfs-backend';
import { NfsOptions, nfsOptionsSchema } from './options';

export type { NfsOptions } from './options';
export { kernelMountArgs, resolveMounter } from './mounters';

export const nfsBackendType = {
  type: 'nfs',
  description: "volumes on an NFS export: control through netvol's own NFSv3 client, data through the kernel's NFS client or a userspace FUSE server",
  capabilities: Object.freeze({ networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true }),
  optionsSchema: nfsOptionsSchema,
  secrets: () => [],
  create: (options, ctx) => new NfsBackend(options, ctx),
} satisfies BackendType<NfsOptions>;
