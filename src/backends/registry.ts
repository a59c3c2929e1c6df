import { localBackendType } from './local/local-backend';
import { nfsBackendType } from './nfs';
import { sftpBackendType } from './sftp';
import type { BackendType } from './types';

/**
 * Every backend type netvol knows, by its `type` key in the daemon config. A new backend adds one
 * line here and nothing elsewhere.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
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
