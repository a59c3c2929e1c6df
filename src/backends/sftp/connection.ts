import type { SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { ErrorCode, NetvolError, redactString } from '../../errors';
import type { Logger } from '../../log';
import { abortedBecause, withDeadline } from '../deadline';
import { fingerprint as fingerprintOf } from './host-key';

/** Numeric status codes of SFTP v3 replies (ssh2 puts them in `err.code`). */
export const SFTP_STATUS = { EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, OP_UNSUPPORTED: 8 } as const;

export function sftpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** One SFTP request, as a promise of its callback's answer. */
export function request<T = void>(f: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** What a connection needs; built once by the backend from its options. */
export interface ConnectionSettings {
  backend: string;
  host: string;
  port: number;
  username: string;
  timeoutMs: number;
  /** Credentials, read when a connection is made (files may change between connections). */
  credentials: () => Promise<{ privateKey: Buffer } | { password: string }>;
  /** Host key algorithms to offer, when the expected key types are known. */
  hostKeyAlgorithms?: string[];
  /** Decides about the presented host key; returns what was expected when it refuses the key. */
  verifyHostKey: (blob: Buffer) => { ok: true } | { ok: false; expected: string };
  logger: Logger;
}

/**
 * One kept-alive SFTP control connection per backend (ssh2-sftp-client over ssh2), made on first
 * use and made again after it fails. Every call is bounded by the backend's timeout and fails with a
 * NetvolError naming the backend and never a secret.
 */
export class ControlConnection {
  private client: SftpClient | undefined;
  private wrapper: SFTPWrapper | undefined;
  private connecting: Promise<SFTPWrapper> | undefined;
  private generation = 0;
  /** The host key the server showed on the last handshake. */
  presentedHostKey: Buffer | undefined;

  constructor(private readonly s: ConnectionSettings) {}

  /** Limits the host key algorithms offered on the next connections (to the types known_hosts lists). */
  setHostKeyAlgorithms(algorithms: string[]): void {
    this.s.hostKeyAlgorithms = algorithms;
  }

  private get where(): string {
    return `${this.s.host}:${this.s.port}`;
  }

  /**
   * Runs `fn` on the SFTP session, connecting first if needed. A call that fails because a reused
   * connection had died is retried once on a fresh connection. At the timeout, or when `signal`
   * (the request's deadline) aborts, the call stops waiting and the connection is dropped: a
   * request stuck on it never answers late, and the next call connects afresh.
   */
  async use<T>(what: string, fn: (sftp: SFTPWrapper) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withDeadline(
      this.s.timeoutMs,
      (why) => {
        this.drop();
        if (why === 'aborted') return new NetvolError('TIMEOUT', `backend ${this.s.backend}: ${what}: ${abortedBecause(signal)}; the connection to ${this.where} was reset`);
        return new NetvolError('BACKEND_UNAVAILABLE', `backend ${this.s.backend}: ${what}: the SSH server at ${this.where} did not answer within ${Math.round(this.s.timeoutMs / 1000)} s`);
      },
      (expired) => this.attempt(what, fn, expired),
      signal,
    );
  }

  private async attempt<T>(what: string, fn: (sftp: SFTPWrapper) => Promise<T>, expired: () => boolean): Promise<T> {
    for (let tries = 0; ; tries++) {
      const reused = this.wrapper !== undefined;
      const generation = this.generation;
      const sftp = await this.session(what);
      try {
        return await fn(sftp);
      } catch (err) {
        if (sftpStatus(err) !== undefined || err instanceof NetvolError) throw err;
        // Not an SFTP status: the connection broke under the call.
        if (generation === this.generation) this.drop();
        if (reused && tries === 0 && !expired()) {
          this.s.logger.info('sftp control connection was lost; reconnecting', { backend: this.s.backend, error: redactString(String((err as Error)?.message)) });
          continue;
        }
        throw new NetvolError('BACKEND_UNAVAILABLE', `backend ${this.s.backend}: ${what}: the connection to ${this.where} was lost (${redactString(String((err as Error)?.message ?? err))})`, { cause: err });
      }
    }
  }

  private session(what: string): Promise<SFTPWrapper> {
    if (this.wrapper) return Promise.resolve(this.wrapper);
    if (!this.connecting) {
      const connecting = this.connect(what).finally(() => {
        if (this.connecting === connecting) this.connecting = undefined;
      });
      this.connecting = connecting;
    }
    return this.connecting;
  }

  private async connect(what: string): Promise<SFTPWrapper> {
    const generation = ++this.generation;
    const lost = (event: string) => () => {
      if (generation !== this.generation) return;
      this.s.logger.info('sftp control connection closed', { backend: this.s.backend, event });
      this.drop();
    };
    const client = new SftpClient(`netvol-${this.s.backend}`, {
      error: (err: unknown) => {
        if (generation !== this.generation) return;
        this.s.logger.warn('sftp control connection failed', { backend: this.s.backend, error: redactString(String((err as Error)?.message ?? err)) });
        this.drop();
      },
      end: lost('end'),
      close: lost('close'),
    });
    this.client = client;
    let refused: { expected: string; presented: string } | undefined;
    this.presentedHostKey = undefined;
    const creds = await this.s.credentials();
    try {
      const wrapper = await client.connect({
        host: this.s.host,
        port: this.s.port,
        username: this.s.username,
        ...creds,
        tryKeyboard: false,
        readyTimeout: this.s.timeoutMs,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        ...(this.s.hostKeyAlgorithms ? { algorithms: { serverHostKey: this.s.hostKeyAlgorithms as never } } : {}),
        hostVerifier: (key: Buffer) => {
          this.presentedHostKey = key;
          const verdict = this.s.verifyHostKey(key);
          if (!verdict.ok) refused = { expected: verdict.expected, presented: fingerprintOf(key) };
          return verdict.ok;
        },
      });
      if (generation !== this.generation) throw new Error('superseded');
      this.wrapper = wrapper;
      return wrapper;
    } catch (err) {
      if (generation === this.generation) this.drop();
      if (refused) {
        throw new NetvolError(
          'BACKEND_AUTH',
          `backend ${this.s.backend}: the SSH server at ${this.where} presented host key ${refused.presented}, but ${refused.expected} was expected: refusing to connect (if the server's key changed on purpose, update knownHostsFile or hostKeyFingerprint)`,
        );
      }
      throw this.connectError(err, what);
    }
  }

  private connectError(err: unknown, what: string): NetvolError {
    const e = err as { code?: unknown; message?: string; level?: string };
    const message = redactString(String(e?.message ?? err));
    const prefix = `backend ${this.s.backend}: ${what}: cannot connect to the SSH server at ${this.where}`;
    let code: ErrorCode = 'BACKEND_UNAVAILABLE';
    let why: string;
    if (e?.code === 'ECONNREFUSED' || /refused connection|ECONNREFUSED/.test(message)) why = 'connection refused (is sshd running on that port?)';
    else if (e?.code === 'ENOTFOUND' || /Address lookup failed/.test(message)) why = 'the host name does not resolve';
    else if (['EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(String(e?.code))) why = `the host is unreachable (${String(e.code)})`;
    else if (/handshake/i.test(message)) why = `no SSH handshake within ${Math.round(this.s.timeoutMs / 1000)} s`;
    else if (/authentication methods failed/i.test(message)) {
      code = 'BACKEND_AUTH';
      why = `the server refused the credentials of user ${this.s.username} (check username and privateKeyFile, password or passwordFile)`;
    } else why = message.replace(/^[a-z]+: /, '');
    return new NetvolError(code, `${prefix}: ${why}`, { cause: err });
  }

  /** Forgets the current connection (it is closed in the background); the next call connects again. */
  drop(): void {
    this.generation++;
    const client = this.client as unknown as { client?: { destroy?: () => void } } | undefined;
    this.client = undefined;
    this.wrapper = undefined;
    this.connecting = undefined;
    try {
      client?.client?.destroy?.();
    } catch {
      /* already closed */
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.generation++;
    this.client = undefined;
    this.wrapper = undefined;
    if (!client) return;
    await Promise.race([client.end().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    (client as unknown as { client?: { destroy?: () => void } }).client?.destroy?.();
  }
}
