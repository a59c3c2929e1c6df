import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NetvolError, registerSecret } from '../../errors';
import type { BackendContext } from '../types';
import { ControlConnection } from './connection';
import { algorithmsFor, fingerprint, knownHostsLine, knownKeysFor } from './host-key';
import { firstLine, SftpOptions } from './options';
import type { SshfsTarget } from './sshfs';

/**
 * How this backend gets into the SSH server, for both halves: the credentials (read again from
 * their files at each connection), the host key check, the control connection, and what sshfs
 * needs to make the same checks.
 */
export class SftpAccess {
  readonly conn: ControlConnection;
  private password: string | undefined;
  /** The host keys the server may present, from knownHostsFile. */
  private expectedKeys: Buffer[] = [];
  private knownHostsForSshfs: string | undefined;

  constructor(
    readonly options: SftpOptions,
    private readonly ctx: BackendContext,
  ) {
    this.password = options.password;
    this.conn = new ControlConnection({
      backend: ctx.name,
      host: options.host,
      port: options.port,
      username: options.username,
      timeoutMs: ctx.timeoutMs,
      credentials: () => this.credentials(),
      verifyHostKey: (blob) => this.verifyHostKey(blob),
      logger: ctx.logger,
    });
    // Backends are built once per daemon start: this warns on every start.
    if (options.insecureSkipHostKeyCheck && !options.knownHostsFile && !options.hostKeyFingerprint) {
      ctx.logger.warn('insecureSkipHostKeyCheck is set: the SSH server host key is NOT verified; anyone who can intercept the connection can read and change every volume of this backend', { backend: ctx.name });
    }
  }

  /** Where the server is, for messages. */
  get where(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** Reads knownHostsFile and the password file: a missing or wrong one fails at open, not at the first volume. */
  async load(): Promise<void> {
    await this.loadKnownHosts();
    if (!this.options.privateKeyFile) await this.readPassword();
  }

  private async credentials(): Promise<{ privateKey: Buffer } | { password: string }> {
    if (this.options.privateKeyFile) {
      try {
        return { privateKey: await fs.readFile(this.options.privateKeyFile) };
      } catch (err) {
        throw new NetvolError('CONFIG', `backend ${this.ctx.name}: cannot read privateKeyFile ${this.options.privateKeyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    return { password: await this.readPassword() };
  }

  private async readPassword(): Promise<string> {
    if (this.options.passwordFile) {
      try {
        this.password = firstLine(await fs.readFile(this.options.passwordFile, 'utf8'));
      } catch (err) {
        throw new NetvolError('CONFIG', `backend ${this.ctx.name}: cannot read passwordFile ${this.options.passwordFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      registerSecret(this.password);
    }
    return this.password as string;
  }

  private verifyHostKey(blob: Buffer): { ok: true } | { ok: false; expected: string } {
    if (this.options.hostKeyFingerprint) {
      const presented = fingerprint(blob);
      return presented === this.options.hostKeyFingerprint.replace(/=$/, '') ? { ok: true } : { ok: false, expected: this.options.hostKeyFingerprint };
    }
    if (this.options.knownHostsFile) {
      if (this.expectedKeys.some((k) => k.equals(blob))) return { ok: true };
      return { ok: false, expected: `${this.expectedKeys.map(fingerprint).join(' or ')} (from ${this.options.knownHostsFile})` };
    }
    return { ok: true };
  }

  /** Reads knownHostsFile (again) and limits the host key algorithms to the types it lists. */
  private async loadKnownHosts(): Promise<void> {
    const file = this.options.knownHostsFile;
    if (!file) return;
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new NetvolError('CONFIG', `backend ${this.ctx.name}: cannot read knownHostsFile ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const keys = knownKeysFor(text, this.options.host, this.options.port);
    const revoked = keys.filter((k) => k.revoked).map((k) => k.blob);
    const good = keys.filter((k) => !k.revoked && !revoked.some((r) => r.equals(k.blob)));
    if (good.length === 0) {
      const name = this.options.port === 22 ? this.options.host : `[${this.options.host}]:${this.options.port}`;
      throw new NetvolError('BACKEND_AUTH', `backend ${this.ctx.name}: knownHostsFile ${file} lists no host key for ${name}: add one (ssh-keyscan -p ${this.options.port} ${this.options.host}, checked out of band)`);
    }
    this.expectedKeys = good.map((k) => k.blob);
    this.conn.setHostKeyAlgorithms(algorithmsFor([...new Set(good.map((k) => k.type))]));
    this.knownHostsForSshfs = file;
  }

  /**
   * For sshfs: the configured known_hosts, or (fingerprint and insecure modes) a known_hosts in
   * workDir holding the very key the control connection has just verified.
   */
  async sshfsKnownHosts(): Promise<string | undefined> {
    if (this.options.knownHostsFile) return this.knownHostsForSshfs;
    const key = this.conn.presentedHostKey;
    if (!key) return undefined;
    const file = path.join(this.ctx.workDir, '.known_hosts');
    const line = knownHostsLine(this.options.host, this.options.port, key);
    const current = await fs.readFile(file, 'utf8').catch(() => '');
    if (current !== line) {
      const temp = `${file}.${process.pid}.tmp`;
      await fs.writeFile(temp, line, { mode: 0o600 });
      await fs.rename(temp, file);
    }
    return file;
  }

  /** Everything sshfs needs to reach the server as the control connection does. */
  async sshfsTarget(): Promise<SshfsTarget> {
    const auth = this.options.privateKeyFile ? { identityFile: this.options.privateKeyFile } : { password: await this.readPassword() };
    return {
      backend: this.ctx.name,
      host: this.options.host,
      port: this.options.port,
      username: this.options.username,
      auth,
      knownHostsFile: await this.sshfsKnownHosts(),
      timeoutMs: this.ctx.timeoutMs,
      extraOptions: this.options.sshfsOptions,
    };
  }
}
