// One TCP connection carrying record-marked RPC messages. Knows nothing about
// xids or programs: it sends records and hands complete records back.

import * as net from 'node:net';
import { RecordDecoder } from './record-marking';
import { RpcError } from './errors';

export interface TransportOptions {
  host: string;
  port: number;
  /** Bind a source port below 1024 (needs root or CAP_NET_BIND_SERVICE). */
  privilegedPort?: boolean;
  connectTimeoutMs: number;
}

export interface TransportEvents {
  onRecord(record: Buffer): void;
  /** Called once when the connection ends, for whatever reason. */
  onClose(err?: Error): void;
}

const PRIV_LOW = 512;
const PRIV_HIGH = 1023;

export class RpcTransport {
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    events: TransportEvents,
  ) {
    const decoder = new RecordDecoder(events.onRecord);
    let closeErr: Error | undefined;
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        closeErr = err as Error;
        socket.destroy();
      }
    });
    socket.on('error', (err) => {
      closeErr ??= err;
    });
    socket.on('close', () => {
      this.closed = true;
      events.onClose(closeErr);
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
    if (!opts.privilegedPort) {
      const socket = await connectSocket(opts, undefined);
      return new RpcTransport(socket, events);
    }
    // Try reserved ports from a random start, skipping ones in use (including
    // ones in TIME_WAIT towards this server after a reconnect).
    const span = PRIV_HIGH - PRIV_LOW + 1;
    const start = Math.floor(Math.random() * span);
    let lastErr: unknown;
    for (let i = 0; i < span; i++) {
      const port = PRIV_LOW + ((start + i) % span);
      try {
        const socket = await connectSocket(opts, port);
        return new RpcTransport(socket, events);
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

function connectSocket(opts: TransportOptions, localPort: number | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: opts.host,
      port: opts.port,
      localPort,
      noDelay: true,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new RpcError('ETIMEDOUT', `connecting to ${opts.host}:${opts.port} timed out after ${opts.connectTimeoutMs} ms`),
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
        new RpcError(err.code ?? 'ECONNREFUSED', `cannot connect to ${opts.host}:${opts.port}: ${err.message}`, {
          cause: err,
        }),
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
