import { localBackendType } from './local/local-backend';
import { nfsBackendType } from './nfs';
import { sftpBackendType } from './sftp';
import type { BackendType } from './types';

/**
 * Every backend type netvol knows, by its `type` key in the daemon config: its options, its
 * capabilities and its constructor. A new backend type adds one line here (see README.md for the
 * rest of what it touches). Each entry is checked against BackendType of its own options where it
 * is declared (`satisfies`); here they are held without their option types (`any`: the options
 * type appears both as input and output, so no narrower type holds them all).
 */
const types: Record<string, BackendType<any>> = {
  [localBackendType.type]: localBackendType,
  [sftpBackendType.type]: sftpBackendType,
  [nfsBackendType.type]: nfsBackendType,
};

export function backendTypes(): Record<string, BackendType<unknown>> {
  return types;
}

export function backendType(type: string): BackendType<unknown> | undefined {
  return Object.prototype.hasOwnProperty.call(types, type) ? types[type] : undefined;
}
