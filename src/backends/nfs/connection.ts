import { ErrorCode, NetvolError } from '../../errors';
import type { Logger } from '../../log';
import { MOUNT_PROGRAM, MOUNT_VERSION, NfsClient, NfsClientError, NfsTarget, RpcClient, RpcError, exportList, isUnreachableError, lookupPort, mkdirp } from '../../nfs';
import { abortedBecause, withDeadline } from '../deadline';

export interface ControlSettings {
  backend: string;
  target: NfsTarget;
  /** Folder inside the export holding the volumes ("" for the export root). */
  folder: string;
  timeoutMs: number;
  logger: Logger;
}

/** What a control call works with: the client and the handle of the volumes folder. */
export interface Session {
  client: NfsClient;
  root: Buffer;
}

/**
 * One NFS client per backend for every control operation: connected (portmapper → MOUNT → NFS) on
 * first use, reconnected by the library after a dropped connection, and made again from scratch
 * after a failure to connect or a stale root handle. Every call is bounded by the backend's
 * timeout and fails with a NetvolError naming the backend.
 */
export class ControlConnection {
  private session: Session | undefined;
  private connecting: Promise<Session> | undefined;

  constructor(private readonly s: ControlSettings) {}

  private get where(): string {
    return `${this.s.target.host}:${this.s.target.exportPath}`;
  }

  /**
   * Runs `fn` with the session; a stale handle makes it reconnect and try once more. `readOnly`: `fn`
   * only reads, so when the connection is dropped under it (another call found the server
   * unreachable and closed it: ECLOSED, no answer came), it is tried once more on a new one.
   */
  async use<T>(what: string, fn: (s: Session) => Promise<T>, volume?: string, signal?: AbortSignal, readOnly = false): Promise<T> {
    const expire = (why: 'timeout' | 'aborted') =>
      why === 'aborted'
        ? new NetvolError('TIMEOUT', `backend ${this.s.backend}: ${what}: ${abortedBecause(signal)}`, { volume })
        : new NetvolError('BACKEND_UNAVAILABLE', `backend ${this.s.backend}: ${what}: the NFS server ${this.s.target.host} did not answer within ${Math.round(this.s.timeoutMs / 1000)} s`, { volume });
    try {
      return await withDeadline(this.s.timeoutMs, expire, () => this.attempt(what, fn, signal, readOnly), signal);
    } catch (err) {
      throw this.error(err, what, volume);
    }
  }

  /** With a signal, `fn` gets a view of the client whose RPCs end at it (the connection stays up for other calls). */
  private async attempt<T>(what: string, fn: (s: Session) => Promise<T>, signal?: AbortSignal, readOnly = false): Promise<T> {
    for (let tries = 0; ; tries++) {
      const session = await this.connect(what);
      try {
        return await fn(signal ? { ...session, client: session.client.withSignal(signal) } : session);
      } catch (err) {
        const code = (err as { code?: unknown })?.code;
        if ((code === 'ESTALE' || code === 'EBADHANDLE') && tries === 0) {
          this.s.logger.info('stale NFS file handle; resolving the volumes folder again', { backend: this.s.backend });
          this.drop(session);
          continue;
        }
        if (code === 'ECLOSED' && readOnly && tries === 0 && this.session !== session) {
          this.s.logger.debug('a read was cut off by a dropped connection; reading again on a new one', { backend: this.s.backend, what });
          continue;
        }
        if (err instanceof RpcError && isUnreachableError(err)) this.drop(session);
        throw err;
      }
    }
  }

  private connect(what: string): Promise<Session> {
    if (this.session) return Promise.resolve(this.session);
    if (!this.connecting) {
      const connecting = this.open().then(
        (session) => {
          this.session = session;
          this.connecting = undefined;
          return session;
        },
        (err) => {
          this.connecting = undefined;
          throw this.connectError(err, what);
        },
      );
      this.connecting = connecting;
    }
    return this.connecting;
  }

  private async open(): Promise<Session> {
    const client = await NfsClient.connect({
      ...this.s.target,
      timeoutMs: Math.max(1000, this.s.timeoutMs - 250),
      connectTimeoutMs: Math.min(5000, this.s.timeoutMs),
    }).catch(async (err) => {
      // Servers answer a missing export and a refused host alike (ganesha: ACCES); the export list tells them apart.
      if ((err as NfsClientError)?.procedure === 'MOUNT3.MNT') throw Object.assign(err, { exported: await this.exports() });
      throw err;
    });
    try {
      const root = this.s.folder === '' ? client.root : await mkdirp(client, this.s.folder, 0o755);
      return { client, root };
    } catch (err) {
      await client.close().catch(() => undefined);
      throw err;
    }
  }

  /** The server's export list (MOUNT3 EXPORT), or undefined if it cannot be had. */
  private async exports(): Promise<string[] | undefined> {
    let rpc: RpcClient | undefined;
    try {
      const timeoutMs = Math.min(3000, this.s.timeoutMs);
      const port = this.s.target.mountPort ?? (await lookupPort({ host: this.s.target.host, timeoutMs }, MOUNT_PROGRAM, MOUNT_VERSION));
      rpc = await RpcClient.connect({ host: this.s.target.host, port, timeoutMs, connectTimeoutMs: timeoutMs });
      return (await exportList(rpc)).map((e) => e.path);
    } catch {
      return undefined;
    } finally {
      rpc?.close();
    }
  }

  private drop(session: Session): void {
    if (this.session !== session) return;
    this.session = undefined;
    void session.client.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) await s.client.close().catch(() => undefined);
  }

  /** Failures of connecting: portmapper, MOUNT, the export and the volumes folder, each said plainly. */
  private connectError(err: unknown, what: string): NetvolError {
    if (err instanceof NetvolError) return err;
    const e = err as NfsClientError;
    const code = String(e?.code ?? '');
    const proc = e?.procedure ?? '';
    const prefix = `backend ${this.s.backend}: ${what}: cannot use export ${this.where}`;
    if (proc === 'MOUNT3.MNT') {
      const exported = (err as { exported?: string[] }).exported;
      const list = exported ? (exported.length > 0 ? exported.join(', ') : 'nothing') : undefined;
      if (code === 'ENOENT' || code === 'ENOTDIR' || (exported && !exported.includes(this.s.target.exportPath))) {
        return new NetvolError('NOT_FOUND', `${prefix}: the server does not export ${this.s.target.exportPath}${list ? ` (it exports ${list})` : ''}: check export in the backend config`, { cause: err });
      }
      if (code === 'EACCES' || code === 'EPERM') {
        return new NetvolError('PERMISSION', `${prefix}: the server exports ${this.s.target.exportPath} but refuses to let this host mount it (check the export's client list and security flavour; AUTH_SYS is used)`, { cause: err });
      }
    }
    if (code === 'EAUTH') return new NetvolError('BACKEND_AUTH', `${prefix}: the server refused the AUTH_SYS credentials uid ${this.s.target.uid} gid ${this.s.target.gid} (${e.message})`, { cause: err });
    if (code === 'EPROGUNAVAIL' && proc.startsWith('PMAP')) return new NetvolError('BACKEND_UNAVAILABLE', `${prefix}: ${e.message} (is the NFS server running? set port and mountPort if it has no portmapper)`, { cause: err });
    if (isUnreachableError(err)) {
      const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ETIMEDOUT' ? 'no answer' : code;
      const which = this.s.target.port === undefined || this.s.target.mountPort === undefined ? ' (its portmapper, MOUNT or NFS service)' : '';
      return new NetvolError('BACKEND_UNAVAILABLE', `${prefix}: cannot reach the NFS server${which}: ${why}`, { cause: err });
    }
    if (this.s.folder !== '' && (code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) {
      return new NetvolError(code === 'ENOTDIR' ? 'CONFIG' : 'PERMISSION', `${prefix}: cannot open or create the volumes folder ${this.s.folder} inside the export: ${e.message}`, { cause: err });
    }
    return this.error(err, `${what}: cannot use export ${this.where}`);
  }

  /** Any library error as a NetvolError naming the backend and what was being done. */
  error(err: unknown, what: string, volume?: string): NetvolError {
    if (err instanceof NetvolError) return err;
    const e = err as NfsClientError;
    const code = String(e?.code ?? '');
    const prefix = `backend ${this.s.backend}: ${what}`;
    const detail = e?.message ?? String(err);
    let nv: ErrorCode = 'INTERNAL';
    let why = `the server reported: ${detail}`;
    switch (code) {
      case 'ENOENT':
        nv = 'NOT_FOUND';
        why = 'no such file or folder on the server';
        break;
      case 'EACCES':
      case 'EPERM':
        nv = 'PERMISSION';
        why = `permission denied on the server for uid ${this.s.target.uid} (the export needs no_root_squash, or set uid/gid to the owner of the volumes folder)`;
        break;
      case 'EROFS':
        nv = 'PERMISSION';
        why = 'the export is read-only';
        break;
      case 'ENOSPC':
      case 'EDQUOT':
        nv = 'NO_SPACE';
        why = code === 'EDQUOT' ? "the server's quota for this user is used up" : "the server's disk is full";
        break;
      case 'ESTALE':
      case 'EBADHANDLE':
        nv = 'BACKEND_UNAVAILABLE';
        why = 'the server no longer knows the file handle (was the export re-created?)';
        break;
      case 'EAUTH':
        nv = 'BACKEND_AUTH';
        why = `the server refused the AUTH_SYS credentials uid ${this.s.target.uid} gid ${this.s.target.gid}`;
        break;
      default:
        if (isUnreachableError(err)) {
          nv = 'BACKEND_UNAVAILABLE';
          why = `the NFS server ${this.s.target.host} did not answer (${code})`;
        }
    }
    return new NetvolError(nv, `${prefix}: ${why}`, { volume, cause: err });
  }
}
