/**
 * The one table of error codes. Each code has a category (after moby's errdefs) and a line of
 * documentation; a unit test checks that every code is documented in the README.
 */
export type ErrorCategory = 'invalid' | 'notFound' | 'conflict' | 'unavailable' | 'permission' | 'system';

export const ERROR_CODES = {
  INVALID_NAME: { category: 'invalid', doc: 'the volume name breaks Docker naming rules' },
  INVALID_OPTION: { category: 'invalid', doc: 'an unknown volume option, or a bad value for a known one' },
  OPTIONS_CONFLICT: { category: 'conflict', doc: 'the volume exists with different options' },
  NOT_FOUND: { category: 'notFound', doc: 'no such volume on any configured backend' },
  IN_USE: { category: 'conflict', doc: 'the volume is mounted by containers on this host, or attached on another live host' },
  REMOVING: { category: 'conflict', doc: 'another host is removing the volume right now' },
  LEASE_HELD: { category: 'conflict', doc: 'an image volume is attached on another host' },
  NO_SPACE: { category: 'unavailable', doc: 'the backend lacks free space for the requested size' },
  BACKEND_UNAVAILABLE: { category: 'unavailable', doc: 'the backend could not be reached in time' },
  BACKEND_AUTH: { category: 'permission', doc: 'the backend refused the credentials or the host key' },
  PERMISSION: { category: 'permission', doc: 'the backend or the host refused an operation on a path' },
  TIMEOUT: { category: 'unavailable', doc: 'an operation did not finish within its time limit' },
  CONFIG: { category: 'invalid', doc: 'the daemon configuration is invalid' },
  COMMAND_FAILED: { category: 'system', doc: 'a helper program (mount, mkfs, losetup, sshfs) failed' },
  INTERNAL: { category: 'system', doc: 'an unexpected failure inside netvol' },
} as const satisfies Record<string, { category: ErrorCategory; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
