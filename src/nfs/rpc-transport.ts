// One TCP connection carrying record-marked RPC messages. Knows nothing about
// xids or programs: it sends records and hands complete records back.

import * as net from 'node:net';
import { RecordDecoder, RecordHandler } from './record-marking';
import { BufferPool } from './buffer-pool';
import { RpcError } from './errors';

export interface TransportOptions {
  host: string;
  port: number;
  /** Bind a source port below 1024 (needs root or CAP_NET_BIND_SERVICE). */
  privilegedPort?: boolean;
  connectTimeoutMs: number;
  /** Pool for large incoming records (READ replies). */
  pool?: BufferPool;
}

/**
 * Bytes the socket reads at once into one buffer reused for the connection's life. Small: the
 * rest of a larger record (a READ's data) is read straight into the record's own buffer, with
 * no copy, and many small replies still fit in one read.
 */
const READ_BUFFER_BYTES = 32 * 1024;

export interface TransportEvents {
  onRecord: RecordHandler;
  /** Called once when the connection ends, for whatever reason. */
  onClose(err?: Error): void;
}

const PRIV_LOW = 512;
const PRIV_HIGH = 1023;

/** Connect failures in words, keyed by code. */
const CONNECT_FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'no answer',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed for now',
};

/**
 * Why a connect attempt failed, in a few words that end with the code, e.g.
 * "connection refused (ECONNREFUSED)"; other errors (a bind refused for a
 * privileged source port, no free source port…) give their own message.
 */
export function connectFailureReason(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  const words = typeof code === 'string' ? CONNECT_FAILURES[code] : undefined;
  if (words) return `${words} (${String(code)})`;
  return err instanceof Error ? err.message : String(err);
}

export class RpcTransport {
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    events: TransportEvents,
    decodeError: () => Error | undefined,
  ) {
    let closeErr: Error | undefined;
    socket.on('error', (err) => {
      closeErr ??= err;
    });
    socket.on('close', () => {
      this.closed = true;
      events.onClose(decodeError() ?? closeErr);
    });
  }

  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  get isOpen(): boolean {
    return !this.closed && !this.socket.destroyed;
  }

  /** Writes one record made of the given segments; segment 0 must start with 4 reserved bytes for the mark. */
  send(segments: Buffer[], totalLength: number): void {
    if (!this.isOpen) return;
    segments[0].writeUInt32BE((0x8000_0000 | (totalLength - 4)) >>> 0, 0);
    if (segments.length === 1) {
      this.socket.write(segments[0]);
      return;
    }
    this.socket.cork();
    for (const s of segments) this.socket.write(s);
    this.socket.uncork();
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  static async connect(opts: TransportOptions, events: TransportEvents): Promise<RpcTransport> {
    // Records are decoded from a reused read buffer (no per-read allocation), or, for the rest of
    // a large fragment, read where they belong (no copy).
    const decoder = new RecordDecoder(events.onRecord, undefined, opts.pool);
    let decodeErr: Error | undefined;
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const nextBuffer = (): Buffer => (decodeErr ? readBuffer : (decoder.inPlace(READ_BUFFER_BYTES) ?? readBuffer));
    const onRead = (n: number, buf: Uint8Array, socket: net.Socket): boolean => {
      if (decodeErr) return false;
      try {
        if (buf === readBuffer) decoder.push(readBuffer.subarray(0, n));
        else decoder.landed(n);
      } catch (err) {
        decodeErr = err as Error;
        socket.destroy();
        return false;
      }
      return true;
    };
    const make = async (localPort: number | undefined) => {
      const socket = await connectSocket(opts, localPort, nextBuffer, onRead);
      return new RpcTransport(socket, events, () => decodeErr);
    };
    if (!opts.privilegedPort) return make(undefined);
    // Try reserved ports from a random start, skipping ones in use (including
    // ones in TIME_WAIT towards this server after a reconnect).
    const span = PRIV_HIGH - PRIV_LOW + 1;
    const start = Math.floor(Math.random() * span);
    let lastErr: unknown;
    for (let i = 0; i < span; i++) {
      const port = PRIV_LOW + ((start + i) % span);
      try {
        return await make(port);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EADDRNOTAVAIL') throw err;
        lastErr = err;
      }
    }
    throw new RpcError('EADDRINUSE', `no free privileged source port to reach ${opts.host}:${opts.port}`, {
      cause: lastErr,
    });
  }
}

function connectSocket(
  opts: TransportOptions,
  localPort: number | undefined,
  nextBuffer: () => Buffer,
  onRead: (n: number, buf: Uint8Array, socket: net.Socket) => boolean,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const callback = (n: number, buf: Uint8Array): boolean => onRead(n, buf, socket);
    const socket: net.Socket = net.connect({
      host: opts.host,
      port: opts.port,
      localPort,
      noDelay: true,
      onread: { buffer: nextBuffer, callback },
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new RpcError(
          'ETIMEDOUT',
          `cannot connect to ${opts.host}:${opts.port}: no answer within ${opts.connectTimeoutMs} ms (ETIMEDOUT)`,
        ),
      );
    }, opts.connectTimeoutMs);
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      if (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL') {
        reject(err);
        return;
      }
      reject(
        new RpcError(
          err.code ?? 'ECONNREFUSED',
          `cannot connect to ${opts.host}:${opts.port}: ${connectFailureReason(err)}`,
          { cause: err },
        ),
      );
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setKeepAlive(true, 10_000);
      resolve(socket);
    });
  });
}
