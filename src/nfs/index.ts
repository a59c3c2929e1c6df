// Public face of the NFSv3 client library. Everything else in this folder is
// private to it; this folder imports nothing from the rest of the project.

export { NfsClient } from './client';
export type { NfsClientOptions, WriteRangeOptions, CloseOptions } from './client';
export { Nfs3 } from './nfs3';
export type { ReaddirPlusOptions, RenameResult } from './nfs3';
export * from './nfs3-types';
export { NfsClientError, NfsError, RpcError, WriteVerifierError, NFS3_STATUS, nfsStatusCode, isNfsError } from './errors';
export type { StatusEntry } from './errors';
export { isUnreachableError, isTransportError } from './errors';
export type { NfsTarget } from './target';
export { RpcClient } from './rpc-client';
export type { RpcClientOptions, CallOptions, ArgsEncoder } from './rpc-client';
export { authSys, authNone, AUTH_NONE, AUTH_SYS } from './rpc-message';
export type { AuthSysParams, EncodedAuth } from './rpc-message';
export {
  PMAP_PORT,
  PMAP_PROGRAM,
  PMAP_VERSION,
  IPPROTO_TCP,
  IPPROTO_UDP,
  lookupPort,
  pmapGetPort,
  pmapSet,
  pmapUnset,
  pmapDump,
} from './portmap';
export type { PortMapping, PortLookupOptions } from './portmap';
export { MOUNT_PROGRAM, MOUNT_VERSION, mnt, umnt, exportList } from './mount3';
export type { MountResult, ExportEntry } from './mount3';
export { XdrReader, XdrWriter, XdrDecodeError } from './xdr';
export { RecordDecoder } from './record-marking';
export {
  resolvePath,
  mkdirp,
  rmrf,
  emptyDir,
  walk,
  readdirAll,
  readdirIterate,
  readWholeFile,
  writeWholeFile,
  splitPath,
  splitParent,
} from './helpers';
export type { WalkTotals, WalkOptions, ReaddirOptions, WriteWholeFileOptions } from './helpers';
