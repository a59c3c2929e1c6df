import { FolderBackend } from '../folder/folder-backend';
import type { BackendType } from '../types';
import { SftpAccess } from './access';
import { SftpOptions, sftpOptionsSchema, sftpSecrets } from './options';
import { SshfsDataPath } from './sshfs-data-path';
import { SftpTree } from './sftp-tree';

export type { SftpOptions } from './options';

/** OpenSSH's posix-rename@openssh.com makes renames atomic (plain SFTP v3 rename cannot replace a file). */
const capabilities = Object.freeze({ networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true, symlinkAttributes: false });

/** Volumes on an SSH server: control over one kept-alive SFTP connection, data through one sshfs per attached volume. */
export const sftpBackendType = {
  type: 'sftp',
  description: 'volumes on an SSH server: control over SFTP, data through sshfs',
  capabilities,
  optionsSchema: sftpOptionsSchema,
  secrets: sftpSecrets,
  create: (options, ctx) => {
    const access = new SftpAccess(options, ctx);
    return new FolderBackend({ type: 'sftp', capabilities, tree: new SftpTree(ctx.name, access), dataPath: new SshfsDataPath(ctx.name, access, ctx.timeoutMs, ctx.logger) }, ctx);
  },
} satisfies BackendType<SftpOptions>;
