// An ONC RPC client over one TCP connection: many calls in flight, replies
// matched by xid, a deadline per call, and reconnection after the connection
// drops. Calls that were sent but not answered when the connection dropped are
// resent on the new connection if they are idempotent, and fail with
// ECONNRESET otherwise (the caller cannot know whether they ran). A call whose
// deadline passes while the client cannot connect says why the last connect
// attempt failed.

import { RpcTransport, connectFailureReason } from './rpc-transport';
import { XdrReader, XdrWriter } from './xdr';
import { EncodedAuth, authNone, decodeReply, writeCallHeader } from './rpc-message';
import { NfsClientError, RpcError } from './errors';
import { BufferPool } from './buffer-pool';

export interface RpcClientOptions {
  host: string;
  port: number;
  /** Credential sent with every call; AUTH_NONE when omitted. */
  auth?: EncodedAuth;
  privilegedPort?: boolean;
  /** Default deadline for each call, including any reconnect time. Default 10 000. */
  timeoutMs?: number;
  /** Deadline for each TCP connect attempt. Default 5 000. */
  connectTimeoutMs?: number;
  /** Upper bound of the delay between reconnect attempts. Default 1 000. */
  maxReconnectDelayMs?: number;
  /** Pool for large replies; one is made per client when omitted. */
  pool?: BufferPool;
}

export interface CallOptions {
  /** Safe to resend after a reconnect. Default true. */
  idempotent?: boolean;
  timeoutMs?: number;
  /** Name used in errors, e.g. "NFS3.READ". */
  name?: string;
  /**
   * The caller will call release() on the returned reader once done with it,
   * so a large reply's buffer can be reused. Without this, it never is.
   */
  releasable?: boolean;
  /**
   * The caller's cancellation: when it aborts, the call is forgotten (a late reply is dropped)
   * and rejects with RpcError ECANCELED. The connection stays up for other calls.
   */
  signal?: AbortSignal;
}

export type ArgsEncoder = (w: XdrWriter) => void;

interface PendingCall {
  xid: number;
  name: string;
  segments: Buffer[];
  length: number;
  idempotent: boolean;
  releasable: boolean;
  /** The connection the call was last sent on; undefined while waiting to be sent. */
  sentOn?: RpcTransport;
  timer: NodeJS.Timeout;
  resolve(r: XdrReader): void;
  reject(err: Error): void;
}

export class RpcClient {
  private transport?: RpcTransport;
  private reconnecting = false;
  private closed = false;
  private nextXid = (Math.random() * 0xffff_ffff) >>> 0;
  private readonly pending = new Map<number, PendingCall>();
  private readonly auth: EncodedAuth;
  readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxReconnectDelayMs: number;
  private readonly pool: BufferPool;
  /** How many times the connection was re-established. */
  reconnects = 0;
  /** Why the last reconnect attempt failed; cleared once a connection is made. */
  private lastConnectError?: Error;

  private constructor(private readonly opts: RpcClientOptions) {
    this.auth = opts.auth ?? authNone();
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.maxReconnectDelayMs = opts.maxReconnectDelayMs ?? 1_000;
    this.pool = opts.pool ?? new BufferPool();
  }

  /** Connects now; fails if the first connection cannot be made. */
  static async connect(opts: RpcClientOptions): Promise<RpcClient> {
    const c = new RpcClient(opts);
    c.transport = await c.openTransport();
    return c;
  }

  get host(): string {
    return this.opts.host;
  }

  get port(): number {
    return this.opts.port;
  }

  /** Local TCP port of the current connection, if connected. */
  get localPort(): number | undefined {
    return this.transport?.localPort;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Calls a procedure and resolves with a reader positioned at its results.
   * Rejects with RpcError (ETIMEDOUT, ECONNRESET, EPROCUNAVAIL, EAUTH, …).
   */
  call(prog: number, vers: number, proc: number, args?: ArgsEncoder, options: CallOptions = {}): Promise<XdrReader> {
    const name = options.name ?? `${prog}/${vers}/${proc}`;
    if (this.closed) return Promise.reject(new RpcError('ECLOSED', `${name}: client is closed`, { procedure: name }));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(this.cancelledError(name));
    const xid = this.nextXid;
    this.nextXid = (this.nextXid + 1) >>> 0;
    const w = new XdrWriter(256);
    writeCallHeader(w, xid, prog, vers, proc, this.auth);
    if (args) args(w);
    const length = w.length;
    const segments = w.segments();
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return new Promise<XdrReader>((resolve, reject) => {
      const call: PendingCall = {
        xid,
        name,
        segments,
        length,
        idempotent: options.idempotent ?? true,
        releasable: options.releasable ?? false,
        resolve: (r) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
        timer: setTimeout(() => {
          if (this.pending.get(xid) !== call) return;
          this.pending.delete(xid);
          call.reject(this.timeoutError(name, timeoutMs));
        }, timeoutMs),
      };
      const onAbort = () => {
        if (this.pending.get(xid) !== call) return;
        this.pending.delete(xid);
        clearTimeout(call.timer);
        call.reject(this.cancelledError(name));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(xid, call);
      if (this.transport?.isOpen) this.send(call);
      else this.startReconnect();
    });
  }

  /** Closes the connection; calls still in flight fail with ECLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport?.close();
    this.transport = undefined;
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(new RpcError('ECLOSED', `${call.name}: client closed`, { procedure: call.name }));
    }
    this.pending.clear();
  }

  /**
   * ETIMEDOUT for a call whose deadline passed. While the client is not
   * connected, the message ends with why the last connect attempt failed and
   * that error is the cause: after an outage "no reply" alone hides whether
   * the server refuses connections or does not answer at all.
   */
  private cancelledError(name: string): RpcError {
    return new RpcError('ECANCELED', `${name}: cancelled by the caller`, { procedure: name });
  }

  private timeoutError(name: string, timeoutMs: number): RpcError {
    const lastConnect = this.transport?.isOpen ? undefined : this.lastConnectError;
    const why = lastConnect ? `; last connect attempt: ${connectFailureReason(lastConnect)}` : '';
    const message = `${name}: no reply from ${this.opts.host}:${this.opts.port} within ${timeoutMs} ms${why}`;
    return new RpcError('ETIMEDOUT', message, { procedure: name, cause: lastConnect });
  }

  private send(call: PendingCall): void {
    const t = this.transport!;
    call.sentOn = t;
    t.send(call.segments, call.length);
  }

  private openTransport(): Promise<RpcTransport> {
    let transport: RpcTransport | undefined;
    const pendingRecords: [Buffer, (() => void) | undefined][] = [];
    return RpcTransport.connect(
      {
        host: this.opts.host,
        port: this.opts.port,
        privilegedPort: this.opts.privilegedPort,
        connectTimeoutMs: this.connectTimeoutMs,
        pool: this.pool,
      },
      {
        onRecord: (rec, release) => (transport ? this.onRecord(rec, release) : pendingRecords.push([rec, release])),
        onClose: () => {
          if (transport) this.onTransportClose(transport);
        },
      },
    ).then((t) => {
      transport = t;
      for (const [rec, release] of pendingRecords) this.onRecord(rec, release);
      return t;
    });
  }

  private onRecord(record: Buffer, release?: () => void): void {
    const call = record.length >= 4 ? this.pending.get(record.readUInt32BE(0)) : undefined;
    if (!call) {
      release?.(); // late reply to a call that timed out
      return;
    }
    this.pending.delete(call.xid);
    clearTimeout(call.timer);
    try {
      call.resolve(decodeReply(record, call.name, call.releasable ? release : undefined));
    } catch (err) {
      release?.();
      call.reject(
        err instanceof NfsClientError
          ? err
          : new RpcError('EPROTO', `${call.name}: malformed reply: ${(err as Error).message}`, {
              procedure: call.name,
              cause: err,
            }),
      );
    }
  }

  private onTransportClose(t: RpcTransport): void {
    if (t === this.transport) this.transport = undefined;
    if (this.closed) return;
    for (const call of [...this.pending.values()]) {
      if (call.sentOn !== t) continue;
      if (call.idempotent) {
        call.sentOn = undefined;
        continue;
      }
      this.pending.delete(call.xid);
      clearTimeout(call.timer);
      call.reject(
        new RpcError(
          'ECONNRESET',
          `${call.name}: connection to ${this.opts.host}:${this.opts.port} lost before the reply; ` +
            'the call may or may not have run',
          { procedure: call.name },
        ),
      );
    }
    const waiting = [...this.pending.values()].filter((c) => c.sentOn === undefined);
    if (waiting.length === 0) return;
    if (this.transport?.isOpen) for (const call of waiting) this.send(call);
    else this.startReconnect();
  }

  /** Reconnects with backoff while there are calls waiting to be sent. */
  private startReconnect(): void {
    if (this.reconnecting || this.closed) return;
    this.reconnecting = true;
    void (async () => {
      let delay = 50;
      try {
        while (!this.closed && this.pending.size > 0) {
          try {
            const t = await this.openTransport();
            if (this.closed) {
              t.close();
              return;
            }
            this.transport = t;
            this.lastConnectError = undefined;
            this.reconnects++;
            for (const call of this.pending.values()) if (call.sentOn === undefined) this.send(call);
            return;
          } catch (err) {
            this.lastConnectError = err as Error;
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, this.maxReconnectDelayMs);
          }
        }
      } finally {
        this.reconnecting = false;
      }
    })();
  }
}
