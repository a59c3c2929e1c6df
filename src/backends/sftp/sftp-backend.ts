import { promises as fs } from 'node:fs';
import path from 'node:path';
import { posix } from 'node:path';
import type { FileEntry, SFTPWrapper, Stats } from 'ssh2';
import { NetvolError, registerSecret, redactString } from '../../errors';
import { findMount } from '../../system';
import type { AttachmentHealth, Backend, BackendContext, BackendUsage, RootAttributes } from '../types';
import { ControlConnection, SFTP_STATUS, sftpStatus } from './connection';
import { algorithmsFor, fingerprint, knownHostsLine, knownKeysFor } from './host-key';
import { firstLine, SftpOptions } from './options';
import { fenceSshfs, probe, SSHFS_FS_TYPE, sshfsPids, SshfsTarget, startSshfs, stopSshfs } from './sshfs';
import { BackgroundTasks } from '../background';
import { DATA_DIR, isTempName, probeName, tempName, trashName, TRASH_PREFIX } from '../layout';

/** Folders whose name starts with this are removals in progress; volume names never start with ".". */
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** Promise form of an ssh2 SFTP callback call. */
function call<T = void>(f: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value as T))));
}

/**
 * Volumes on an SSH server. Control operations go over one kept-alive SFTP connection; data goes
 * through one sshfs process per attached volume, started in its own session so that it outlives
 * netvol, and found again after a restart.
 */
export class SftpBackend implements Backend {
  readonly type = 'sftp';
  readonly capabilities = { networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true };
  readonly name: string;
  private readonly root: string;
  private readonly conn: ControlConnection;
  private readonly log: BackendContext['logger'];
  private password: string | undefined;
  /** The host key the server must present, from knownHostsFile or hostKeyFingerprint. */
  private expectedKeys: Buffer[] = [];
  private knownHostsForSshfs: string | undefined;
  private readonly background = new BackgroundTasks();

  constructor(
    private readonly options: SftpOptions,
    private readonly ctx: BackendContext,
  ) {
    this.name = ctx.name;
    this.root = options.path;
    this.log = ctx.logger;
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
    if (this.options.insecureSkipHostKeyCheck && !this.options.knownHostsFile && !this.options.hostKeyFingerprint) {
      this.log.warn('insecureSkipHostKeyCheck is set: the SSH server host key is NOT verified; anyone who can intercept the connection can read and change every volume of this backend', { backend: this.name });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // credentials and host key

  private async credentials(): Promise<{ privateKey: Buffer } | { password: string }> {
    if (this.options.privateKeyFile) {
      try {
        return { privateKey: await fs.readFile(this.options.privateKeyFile) };
      } catch (err) {
        throw new NetvolError('CONFIG', `backend ${this.name}: cannot read privateKeyFile ${this.options.privateKeyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    return { password: await this.readPassword() };
  }

  private async readPassword(): Promise<string> {
    if (this.options.passwordFile) {
      try {
        this.password = firstLine(await fs.readFile(this.options.passwordFile, 'utf8'));
      } catch (err) {
        throw new NetvolError('CONFIG', `backend ${this.name}: cannot read passwordFile ${this.options.passwordFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
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
      throw new NetvolError('CONFIG', `backend ${this.name}: cannot read knownHostsFile ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const keys = knownKeysFor(text, this.options.host, this.options.port);
    const revoked = keys.filter((k) => k.revoked).map((k) => k.blob);
    const good = keys.filter((k) => !k.revoked && !revoked.some((r) => r.equals(k.blob)));
    if (good.length === 0) {
      const name = this.options.port === 22 ? this.options.host : `[${this.options.host}]:${this.options.port}`;
      throw new NetvolError('BACKEND_AUTH', `backend ${this.name}: knownHostsFile ${file} lists no host key for ${name}: add one (ssh-keyscan -p ${this.options.port} ${this.options.host}, checked out of band)`);
    }
    this.expectedKeys = good.map((k) => k.blob);
    this.conn.setHostKeyAlgorithms(algorithmsFor([...new Set(good.map((k) => k.type))]));
    this.knownHostsForSshfs = file;
  }

  /**
   * For sshfs: the configured known_hosts, or (fingerprint and insecure modes) a known_hosts in
   * workDir holding the very key the control connection has just verified.
   */
  private async sshfsKnownHosts(): Promise<string | undefined> {
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

  // ---------------------------------------------------------------------------------------------
  // errors

  private remote(name?: string, file?: string): string {
    if (name === undefined) return this.root;
    return file === undefined ? posix.join(this.root, name) : posix.join(this.root, name, file);
  }

  /** An SFTP status error as a NetvolError naming the backend and what was being done. */
  private fail(err: unknown, what: string, volume?: string): NetvolError {
    if (err instanceof NetvolError) return err;
    const status = sftpStatus(err);
    const detail = redactString(String((err as Error)?.message ?? err));
    const prefix = `backend ${this.name}: ${what}`;
    switch (status) {
      case SFTP_STATUS.NO_SUCH_FILE:
        return new NetvolError('NOT_FOUND', `${prefix}: no such file or folder on the server`, { volume, cause: err });
      case SFTP_STATUS.PERMISSION_DENIED:
        return new NetvolError('PERMISSION', `${prefix}: permission denied on the server for user ${this.options.username} (check the owner and mode of ${this.root})`, { volume, cause: err });
      case SFTP_STATUS.OP_UNSUPPORTED:
        return new NetvolError('COMMAND_FAILED', `${prefix}: the SFTP server does not support this operation`, { volume, cause: err });
      default:
        return new NetvolError('INTERNAL', `${prefix}: the server reported: ${detail}`, { volume, cause: err });
    }
  }

  /** A generic FAILURE on a write: disk full when the server's filesystem has no room left. */
  private async failWrite(sftp: SFTPWrapper, err: unknown, what: string, volume: string, needed: number): Promise<NetvolError> {
    if (sftpStatus(err) === SFTP_STATUS.FAILURE) {
      const free = await this.statvfsFree(sftp).catch(() => undefined);
      if (free !== undefined && free < Math.max(needed, 1)) {
        return new NetvolError('NO_SPACE', `backend ${this.name}: ${what}: the server's disk is full (${free} bytes free under ${this.root})`, { volume, cause: err });
      }
    }
    return this.fail(err, what, volume);
  }

  private async statvfsFree(sftp: SFTPWrapper): Promise<number> {
    const st = await call<{ f_bavail: number | bigint; f_frsize: number | bigint }>((cb) => sftp.ext_openssh_statvfs(this.root, cb));
    return Number(st.f_bavail) * Number(st.f_frsize);
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  async open(): Promise<void> {
    await this.loadKnownHosts();
    if (!this.options.privateKeyFile) await this.readPassword();
    await fs.mkdir(path.join(this.ctx.workDir, '.logs'), { recursive: true, mode: 0o700 });
    await this.conn.use(`opening folder ${this.root}`, async (sftp) => {
      const st = await call<Stats>((cb) => sftp.stat(this.root, cb)).catch(async (err) => {
        if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
        await this.mkdirs(sftp, this.root);
        return call<Stats>((cb) => sftp.stat(this.root, cb));
      });
      if ((st.mode & S_IFMT) !== S_IFDIR) throw new NetvolError('CONFIG', `backend ${this.name}: path ${this.root} on the server is not a folder`);
      // Writable? Create and remove a probe file (root bypasses mode bits, so modes alone do not tell).
      const probeFile = posix.join(this.root, probeName());
      const handle = await call<Buffer>((cb) => sftp.open(probeFile, 'w', { mode: 0o600 }, cb));
      await call((cb) => sftp.close(handle, cb));
      await call((cb) => sftp.unlink(probeFile, cb));
    }).catch((err) => {
      throw this.fail(err, `cannot use folder ${this.root} on ${this.options.host}:${this.options.port}`);
    });
    await this.sshfsKnownHosts();
    this.background.track(this.emptyTrash().catch((err: Error) => this.log.warn('cannot finish removing folders of removed volumes; will retry at next start', { backend: this.name, error: err.message })));
  }

  private async mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    const parts = dir.split('/').filter(Boolean);
    let current = '';
    for (const part of parts) {
      current = `${current}/${part}`;
      await call((cb) => sftp.mkdir(current, { mode: 0o755 }, cb)).catch(async (err) => {
        const st = await call<Stats>((cb) => sftp.stat(current, cb)).catch(() => undefined);
        if (!st) throw err;
      });
    }
  }

  async close(): Promise<void> {
    await this.background.drain();
    await this.conn.close();
  }

  // ---------------------------------------------------------------------------------------------
  // folders and files

  async listFolders(): Promise<string[]> {
    return this.conn
      .use(`listing ${this.root}`, async (sftp) => {
        const entries = await call<FileEntry[]>((cb) => sftp.readdir(this.root, cb));
        return entries.filter((e) => (e.attrs.mode & S_IFMT) === S_IFDIR && !e.filename.startsWith('.')).map((e) => e.filename);
      })
      .catch((err) => {
        throw this.fail(err, `cannot list ${this.root}`);
      });
  }

  async makeFolder(name: string, withDataDir: boolean): Promise<boolean> {
    const what = `cannot create the folder of volume ${name}`;
    return this.conn
      .use(`creating the folder of volume ${name}`, async (sftp) => {
        try {
          await call((cb) => sftp.mkdir(this.remote(name), { mode: 0o700 }, cb));
        } catch (err) {
          const exists = await call<Stats>((cb) => sftp.stat(this.remote(name), cb)).catch(() => undefined);
          if (exists) return false;
          throw await this.failWrite(sftp, err, what, name, 4096);
        }
        if (withDataDir) {
          await call((cb) => sftp.mkdir(this.remote(name, DATA_DIR), { mode: 0o755 }, cb)).catch(async (err) => {
            throw await this.failWrite(sftp, err, `cannot create the data folder of volume ${name}`, name, 4096);
          });
        }
        return true;
      })
      .catch((err) => {
        throw this.fail(err, what, name);
      });
  }

  async readFile(name: string, file: string): Promise<Buffer | undefined> {
    return this.conn
      .use(`reading ${file} of volume ${name}`, async (sftp) => {
        try {
          return await call<Buffer>((cb) => sftp.readFile(this.remote(name, file), cb));
        } catch (err) {
          if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return undefined;
          throw err;
        }
      })
      .catch((err) => {
        throw this.fail(err, `cannot read ${file} of volume ${name}`, name);
      });
  }

  /** Temporary file, written and fsynced, then renamed over the target (posix-rename@openssh.com). */
  async writeFile(name: string, file: string, data: Buffer): Promise<void> {
    const target = this.remote(name, file);
    const temp = tempName(target);
    const what = `cannot write ${file} of volume ${name}`;
    await this.conn
      .use(`writing ${file} of volume ${name}`, async (sftp) => {
        let handle: Buffer | undefined;
        try {
          handle = await call<Buffer>((cb) => sftp.open(temp, 'wx', { mode: 0o600 }, cb));
          for (let off = 0; off < data.length; off += 32768) {
            const len = Math.min(32768, data.length - off);
            await call((cb) => sftp.write(handle as Buffer, data, off, len, off, cb));
          }
          await call((cb) => sftp.ext_openssh_fsync(handle as Buffer, cb)).catch((err) => {
            if (sftpStatus(err) !== undefined || !/not supported/i.test(String((err as Error).message))) throw err;
          });
          const h = handle;
          handle = undefined;
          await call((cb) => sftp.close(h, cb));
          await this.renameOver(sftp, temp, target);
        } catch (err) {
          if (handle) await call((cb) => sftp.close(handle as Buffer, cb)).catch(() => undefined);
          await call((cb) => sftp.unlink(temp, cb)).catch(() => undefined);
          throw await this.failWrite(sftp, err, what, name, data.length);
        }
      })
      .catch((err) => {
        throw this.fail(err, what, name);
      });
  }

  private async renameOver(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    try {
      await call((cb) => sftp.ext_openssh_rename(from, to, cb));
    } catch (err) {
      if (sftpStatus(err) !== undefined) throw err;
      // No posix-rename extension: plain SFTP rename refuses an existing target.
      await call((cb) => sftp.unlink(to, cb)).catch(() => undefined);
      await call((cb) => sftp.rename(from, to, cb));
    }
  }

  async removeFile(name: string, file: string): Promise<void> {
    await this.conn
      .use(`removing ${file} of volume ${name}`, async (sftp) => {
        await call((cb) => sftp.unlink(this.remote(name, file), cb)).catch((err) => {
          if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
        });
      })
      .catch((err) => {
        throw this.fail(err, `cannot remove ${file} of volume ${name}`, name);
      });
  }

  /**
   * Open with CREAT|EXCL ('wx'): the server's open(2) decides which of several racing hosts makes
   * the file. SFTP v3 reports an existing file as a generic FAILURE, so a FAILURE on a path that
   * exists is "someone else has it". A connection lost after the open was sent leaves the outcome
   * unknown: the retry on a fresh connection cannot tell its own file from another host's, so it
   * fails instead of answering false.
   */
  async createFile(name: string, file: string, data: Buffer): Promise<boolean> {
    const target = this.remote(name, file);
    const what = `cannot create ${file} of volume ${name}`;
    let sent = false;
    return this.conn
      .use(`creating ${file} of volume ${name}`, async (sftp) => {
        // A second run of this function is the retry after a lost connection.
        const sentBefore = sent;
        sent = true;
        let handle: Buffer;
        try {
          handle = await call<Buffer>((cb) => sftp.open(target, 'wx', { mode: 0o600 }, cb));
        } catch (err) {
          if (sftpStatus(err) === SFTP_STATUS.FAILURE) {
            const exists = await call<Stats>((cb) => sftp.lstat(target, cb)).then(
              () => true,
              () => false,
            );
            if (exists) {
              if (sentBefore) throw new NetvolError('BACKEND_UNAVAILABLE', `backend ${this.name}: ${what}: the connection was lost while creating it, and it exists now: whether this host made it is unknown`, { volume: name, cause: err });
              return false;
            }
          }
          throw await this.failWrite(sftp, err, what, name, data.length);
        }
        try {
          for (let off = 0; off < data.length; off += 32768) {
            const len = Math.min(32768, data.length - off);
            await call((cb) => sftp.write(handle, data, off, len, off, cb));
          }
          await call((cb) => sftp.ext_openssh_fsync(handle, cb)).catch((err) => {
            if (sftpStatus(err) !== undefined || !/not supported/i.test(String((err as Error).message))) throw err;
          });
          await call((cb) => sftp.close(handle, cb));
        } catch (err) {
          // Undo: a half-written file would hold the name for nobody.
          await call((cb) => sftp.close(handle, cb)).catch(() => undefined);
          await call((cb) => sftp.unlink(target, cb)).catch(() => undefined);
          throw await this.failWrite(sftp, err, what, name, data.length);
        }
        return true;
      })
      .catch((err) => {
        throw this.fail(err, what, name);
      });
  }

  async listFiles(name: string): Promise<string[]> {
    return this.conn
      .use(`listing the files of volume ${name}`, async (sftp) => {
        try {
          const entries = await call<FileEntry[]>((cb) => sftp.readdir(this.remote(name), cb));
          return entries.filter((e) => (e.attrs.mode & S_IFMT) === S_IFREG && !isTempName(e.filename)).map((e) => e.filename);
        } catch (err) {
          if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return [];
          throw err;
        }
      })
      .catch((err) => {
        throw this.fail(err, `cannot list the files of volume ${name}`, name);
      });
  }

  /**
   * Renames the folder out of the way at once (a trash name no volume can have), then deletes it
   * file by file in the background: a big volume never makes Remove exceed the timeout, and a
   * deletion cut short is finished at the next start.
   */
  async removeFolder(name: string): Promise<void> {
    const trash = posix.join(this.root, trashName(name));
    const moved = await this.conn
      .use(`removing volume ${name}`, async (sftp) => {
        try {
          await call((cb) => sftp.rename(this.remote(name), trash, cb));
          return true;
        } catch (err) {
          if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return false;
          throw err;
        }
      })
      .catch((err) => {
        throw this.fail(err, `cannot remove volume ${name}`, name);
      });
    if (moved) {
      this.background.track(
        this.conn
          .use(`deleting the data of removed volume ${name}`, (sftp) => this.rmTree(sftp, trash))
          .catch((err: Error) => this.log.warn('cannot finish deleting a removed volume; will retry at next start', { volume: name, backend: this.name, error: err.message })),
      );
    }
  }

  private async emptyTrash(): Promise<void> {
    const leftovers = await this.conn.use('looking for unfinished removals', async (sftp) => {
      const entries = await call<FileEntry[]>((cb) => sftp.readdir(this.root, cb));
      return entries.filter((e) => e.filename.startsWith(TRASH_PREFIX)).map((e) => posix.join(this.root, e.filename));
    });
    for (const dir of leftovers) await this.conn.use('finishing an unfinished removal', (sftp) => this.rmTree(sftp, dir));
  }

  /** Removes `dir` and everything below it, a few requests in flight at a time. */
  private async rmTree(sftp: SFTPWrapper, dir: string): Promise<void> {
    const entries = await call<FileEntry[]>((cb) => sftp.readdir(dir, cb)).catch((err) => {
      if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return [] as FileEntry[];
      throw err;
    });
    const files = entries.filter((e) => (e.attrs.mode & S_IFMT) !== S_IFDIR);
    const dirs = entries.filter((e) => (e.attrs.mode & S_IFMT) === S_IFDIR);
    await inBatches(files, 32, (e) =>
      call((cb) => sftp.unlink(posix.join(dir, e.filename), cb)).catch((err) => {
        if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
      }),
    );
    for (const d of dirs) await this.rmTree(sftp, posix.join(dir, d.filename));
    await call((cb) => sftp.rmdir(dir, cb)).catch((err) => {
      if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
    });
  }

  async renameFolder(from: string, to: string): Promise<void> {
    await this.conn
      .use(`renaming volume ${from} to ${to}`, (sftp) => call((cb) => sftp.rename(this.remote(from), this.remote(to), cb)))
      .catch((err) => {
        throw this.fail(err, `cannot rename volume ${from} to ${to}`, from);
      });
  }

  async setDataAttributes(name: string, attrs: RootAttributes): Promise<void> {
    const data = this.remote(name, DATA_DIR);
    await this.conn
      .use(`setting owner and mode of volume ${name}`, async (sftp) => {
        if (attrs.uid !== undefined || attrs.gid !== undefined) {
          const st = await call<Stats>((cb) => sftp.stat(data, cb));
          await call((cb) => sftp.chown(data, attrs.uid ?? st.uid, attrs.gid ?? st.gid, cb));
        }
        if (attrs.mode !== undefined) await call((cb) => sftp.chmod(data, attrs.mode as number, cb));
      })
      .catch((err) => {
        throw this.fail(err, `cannot set owner or mode of volume ${name}`, name);
      });
  }

  /**
   * Bytes below the volume's folder and free on the server. SFTP reports no allocated blocks, so
   * this is the apparent size (a sparse image counts at its full size), measured by walking the
   * tree with directory listings, whose entries already carry sizes (no stat per file).
   */
  async usage(name: string): Promise<BackendUsage> {
    return this.conn
      .use(`measuring volume ${name}`, async (sftp) => {
        const [usedBytes, availableBytes] = await Promise.all([this.treeSize(sftp, this.remote(name)), this.statvfsFree(sftp)]);
        return { usedBytes, availableBytes };
      })
      .catch((err) => {
        throw this.fail(err, `cannot measure volume ${name}`, name);
      });
  }

  private async treeSize(sftp: SFTPWrapper, top: string): Promise<number> {
    let total = 0;
    let level = [top];
    while (level.length > 0) {
      const next: string[] = [];
      await inBatches(level, 16, async (dir) => {
        const entries = await call<FileEntry[]>((cb) => sftp.readdir(dir, cb)).catch((err) => {
          if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE || (sftpStatus(err) === SFTP_STATUS.PERMISSION_DENIED && dir !== top)) return [] as FileEntry[];
          throw err;
        });
        for (const e of entries) {
          if ((e.attrs.mode & S_IFMT) === S_IFDIR) next.push(posix.join(dir, e.filename));
          else total += e.attrs.size ?? 0;
        }
      });
      level = next;
    }
    return total;
  }

  async freeBytes(): Promise<number> {
    return this.conn.use('measuring free space', (sftp) => this.statvfsFree(sftp)).catch((err) => {
      throw this.fail(err, `cannot measure free space under ${this.root} (the server needs the statvfs@openssh.com extension)`);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // attachments (sshfs)

  private mountpoint(name: string): string {
    return path.join(this.ctx.workDir, name);
  }

  private async target(): Promise<SshfsTarget> {
    const auth = this.options.privateKeyFile ? { identityFile: this.options.privateKeyFile } : { password: await this.readPassword() };
    return {
      backend: this.name,
      host: this.options.host,
      port: this.options.port,
      username: this.options.username,
      auth,
      knownHostsFile: await this.sshfsKnownHosts(),
      timeoutMs: this.ctx.timeoutMs,
      extraOptions: this.options.sshfsOptions,
    };
  }

  async attach(name: string): Promise<string> {
    const mp = this.mountpoint(name);
    const existing = await findMount(mp);
    if (existing) {
      if ((await this.health(name)) === 'attached') return mp;
      this.log.warn('sshfs attachment is dead; mounting it again', { volume: name, backend: this.name });
      await stopSshfs(mp, true, this.ctx.timeoutMs).catch(() => undefined);
    }
    // Checks the folder over the control connection first: a clear Err, and a verified host key for sshfs.
    const isDirectory = await this.conn
      .use(`attaching volume ${name}`, async (sftp) => {
        await call<Stats>((cb) => sftp.stat(this.remote(name), cb));
        return call<Stats>((cb) => sftp.stat(this.remote(name, DATA_DIR), cb)).then(
          (st) => (st.mode & S_IFMT) === S_IFDIR,
          () => false,
        );
      })
      .catch((err) => {
        throw this.fail(err, `cannot attach volume ${name}`, name);
      });
    await fs.mkdir(mp, { recursive: true, mode: 0o700 });
    const logFile = path.join(this.ctx.workDir, '.logs', `${name}.log`);
    await startSshfs(await this.target(), this.remote(name), mp, isDirectory, logFile, name);
    this.log.info('sshfs attached', { volume: name, backend: this.name, mountpoint: mp, reconnect: isDirectory });
    return mp;
  }

  async detach(name: string): Promise<void> {
    const mp = this.mountpoint(name);
    if (await findMount(mp)) {
      try {
        await stopSshfs(mp, false, this.ctx.timeoutMs);
      } catch (err) {
        throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot detach volume ${name}: ${redactString((err as Error).message)} (is a process still using ${mp}?)`, { volume: name, cause: err });
      }
    }
    await fs.rmdir(mp).catch(() => undefined);
  }

  /** Cuts this host's sshfs of the volume off the server at once (see Backend.fence); succeeds if none runs. */
  async fence(name: string): Promise<void> {
    const mp = this.mountpoint(name);
    let fenced: boolean;
    try {
      fenced = await fenceSshfs(mp, this.ctx.timeoutMs);
    } catch (err) {
      throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot fence volume ${name}: ${redactString((err as Error).message)}`, { volume: name, cause: err });
    }
    await fs.rmdir(mp).catch(() => undefined);
    if (fenced) this.log.warn('fenced: sshfs killed and its connection reset; processes using the volume get I/O errors', { volume: name, backend: this.name });
  }

  async health(name: string): Promise<AttachmentHealth> {
    const mp = this.mountpoint(name);
    const entry = await findMount(mp);
    if (!entry) return 'detached';
    if (entry.fsType !== SSHFS_FS_TYPE) return 'dead';
    if ((await sshfsPids(mp)).length === 0) return 'dead';
    const result = await probe(mp, Math.min(this.ctx.timeoutMs, 5000));
    if (result === 'ok') return 'attached';
    if (result === 'failed') {
      // sshfs lives and reconnects by itself once the server answers; replacing it now would cut
      // off the containers that use it, so it stays.
      this.log.warn('the server of an attached volume does not answer right now; sshfs will reconnect', { volume: name, backend: this.name });
      return 'attached';
    }
    this.log.warn('sshfs attachment is dead', { volume: name, backend: this.name, why: result === 'hung' ? 'no answer in time' : 'transport endpoint is not connected' });
    return 'dead';
  }
}

async function inBatches<T>(items: T[], width: number, f: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}
