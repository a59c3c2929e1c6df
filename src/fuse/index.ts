/**
 * A FUSE server library in TypeScript: the kernel protocol spoken directly over /dev/fuse, with
 * no libfuse and no native code. Imports nothing else from netvol. See README.md.
 */
export { mountFuse, unmountFuse, setReadahead, mountinfoEntry, MountError } from './mount';
export type { MountOptions } from './mount';
export { FuseSession, FuseError, defaultErrnoOf } from './session';
export type { SessionOptions, Negotiated } from './session';
export type { Context, Entry, Opened, SetattrChanges, DirEntry, FuseOps, Lent, WriteFlags } from './ops';
export { ROOT_ID, RENAME_NOREPLACE, RENAME_EXCHANGE } from './protocol';
export type { Attr, Statfs, Timespec } from './protocol';
