// NfsTarget: where one export is and who the client is to it. Everything that
// connects to the same export (control connections, FUSE servers, background
// deletions) passes this one shape on; its fields are NfsClientOptions' own.

export interface NfsTarget {
  /** Host name or address of the NFS server. */
  host: string;
  /** The exported directory, as the server's MOUNT service names it. */
  exportPath: string;
  /** NFS TCP port; asked of the portmapper when omitted. */
  port?: number;
  /** MOUNT TCP port; asked of the portmapper when omitted. */
  mountPort?: number;
  /** AUTH_SYS identity sent with every call. */
  uid: number;
  gid: number;
}
