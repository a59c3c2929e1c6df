import type { BackendType } from '../types';
import { SftpOptions, sftpOptionsSchema, sftpSecrets } from './options';
import { SftpBackend } from './sftp-backend';

export type { SftpOptions } from './options';

export const sftpBackendType = {
  type: 'sftp',
  description: 'volumes on an SSH server: control over SFTP, data through sshfs',
  capabilities: Object.freeze({ networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true }),
  optionsSchema: sftpOptionsSchema,
  secrets: sftpSecrets,
  create: (options, ctx) => new SftpBackend(options, ctx),
} satisfies BackendType<SftpOptions>;
