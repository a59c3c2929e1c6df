// Path-level helpers built on NfsClient: resolve, mkdirp, rmrf, walk, list a
// directory, read and write whole files. Paths are relative to the export
// root; a leading slash is optional.

import { NfsClient } from './client';
import { DirEntryPlus, Fattr, FileType } from './nfs3-types';
import { NfsClientError, NfsError, WriteVerifierError, isNfsError } from './errors';
import { runLimited } from './limit';

export function splitPath(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/** Splits "a/b/c" into the parent path "a/b" and the name "c". */
export function splitParent(path: string): { parent: string; name: string } {
  const parts = splitPath(path);
  const name = parts.pop();
  if (name === undefined) throw new NfsClientError('EINVAL', 'the export root has no parent');
  return { parent: parts.join('/'), name };
}

/** The handle of a path. */
export async function resolvePath(client: NfsClient, path: string): Promise<Buffer> {
  return (await client.lookupPath(path)).handle;
}

async function attrsOf(client: NfsClient, handle: Buffer, attrs?: Fattr): Promise<Fattr> {
  return attrs ?? client.getattr(handle);
}

/** Creates a directory and any missing parents; returns its handle. */
export async function mkdirp(client: NfsClient, path: string, mode = 0o755): Promise<Buffer> {
  let dir = client.root;
  for (const part of splitPath(path)) {
    try {
      const found = await client.lookup(dir, part);
      const attrs = await attrsOf(client, found.handle, found.attrs);
      if (attrs.type !== FileType.DIR) throw new NfsError(20, 'NFS3.LOOKUP', `${part} is not a directory`);
      dir = found.handle;
      continue;
    } catch (err) {
      if (!isNfsError(err, 'ENOENT')) throw err;
    }
    try {
      dir = (await client.mkdir(dir, part, { mode })).handle;
    } catch (err) {
      if (!isNfsError(err, 'EEXIST')) throw err;
      dir = (await client.lookup(dir, part)).handle; // made by someone else meanwhile
    }
  }
  return dir;
}

export interface ReaddirOptions {
  /** Entries per page are bounded by these byte counts (see NFS3 READDIRPLUS). */
  dircount?: number;
  maxcount?: number;
}

/** Iterates over a directory's entries (without "." and ".."), page by page. */
export async function* readdirIterate(
  client: NfsClient,
  dir: Buffer,
  opts: ReaddirOptions = {},
): AsyncGenerator<DirEntryPlus> {
  let cookie = 0n;
  let cookieverf: Buffer | undefined;
  for (;;) {
    const page = await client.readdirplus(dir, { cookie, cookieverf, ...opts });
    for (const e of page.entries) {
      cookie = e.cookie;
      if (e.name !== '.' && e.name !== '..') yield e;
    }
    cookieverf = page.cookieverf;
    if (page.eof) return;
    if (page.entries.length === 0) {
      throw new NfsClientError('EIO', 'READDIRPLUS returned an empty page without eof', { procedure: 'NFS3.READDIRPLUS' });
    }
  }
}

/** All entries of a directory, paging through READDIRPLUS. */
export async function readdirAll(client: NfsClient, dir: Buffer, opts: ReaddirOptions = {}): Promise<DirEntryPlus[]> {
  const out: DirEntryPlus[] = [];
  for await (const e of readdirIterate(client, dir, opts)) out.push(e);
  return out;
}

async function entryHandle(client: NfsClient, dir: Buffer, e: DirEntryPlus): Promise<Buffer> {
  return e.handle ?? (await client.lookup(dir, e.rawName)).handle;
}

async function entryAttrs(client: NfsClient, dir: Buffer, e: DirEntryPlus): Promise<Fattr> {
  if (e.attrs) return e.attrs;
  const found = await client.lookup(dir, e.rawName);
  return attrsOf(client, found.handle, found.attrs);
}

/** Removes everything inside a directory. */
export async function emptyDir(client: NfsClient, dir: Buffer): Promise<void> {
  const entries = await readdirAll(client, dir);
  await runLimited(entries.length, 8, async (i) => {
    const e = entries[i];
    const attrs = await entryAttrs(client, dir, e);
    if (attrs.type === FileType.DIR) {
      await emptyDir(client, await entryHandle(client, dir, e));
      await ignoreEnoent(client.rmdir(dir, e.rawName));
    } else {
      await ignoreEnoent(client.remove(dir, e.rawName));
    }
  });
}

async function ignoreEnoent(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isNfsError(err, 'ENOENT')) throw err;
  }
}

/**
 * Removes a file or a directory tree; a missing path is not an error. For the
 * export root ("" or "/") it empties the root.
 */
export async function rmrf(client: NfsClient, path: string): Promise<void> {
  if (splitPath(path).length === 0) return emptyDir(client, client.root);
  const { parent, name } = splitParent(path);
  let parentFh: Buffer;
  let target;
  try {
    parentFh = await resolvePath(client, parent);
    target = await client.lookup(parentFh, name);
  } catch (err) {
    if (isNfsError(err, 'ENOENT')) return;
    throw err;
  }
  const attrs = await attrsOf(client, target.handle, target.attrs);
  if (attrs.type === FileType.DIR) {
    await emptyDir(client, target.handle);
    await ignoreEnoent(client.rmdir(parentFh, name));
  } else {
    await ignoreEnoent(client.remove(parentFh, name));
  }
}

export interface WalkTotals {
  /** Regular files. */
  files: number;
  /** Directories below the start (the start itself is not counted). */
  dirs: number;
  symlinks: number;
  /** Other node types (devices, sockets, fifos). */
  others: number;
  /** Sum of the sizes of regular files. */
  bytes: number;
  /** Sum of the space the server reports as used, all node types. */
  usedBytes: number;
}

export interface WalkOptions {
  /** Called for each entry below the start, with its path relative to the start. */
  onEntry?: (path: string, attrs: Fattr) => void;
  /** Directories listed at once. Default 4. */
  concurrency?: number;
}

/** Counts everything below a directory, with byte totals. Does not follow symlinks. */
export async function walk(client: NfsClient, path: string, opts: WalkOptions = {}): Promise<WalkTotals> {
  const totals: WalkTotals = { files: 0, dirs: 0, symlinks: 0, others: 0, bytes: 0, usedBytes: 0 };
  const start = await client.lookupPath(path);
  const startAttrs = await attrsOf(client, start.handle, start.attrs);
  if (startAttrs.type !== FileType.DIR) throw new NfsError(20, 'NFS3.READDIRPLUS', `${path} is not a directory`);
  let level: { fh: Buffer; rel: string }[] = [{ fh: start.handle, rel: '' }];
  while (level.length > 0) {
    const next: { fh: Buffer; rel: string }[] = [];
    const current = level;
    await runLimited(current.length, opts.concurrency ?? 4, async (i) => {
      const { fh, rel } = current[i];
      for await (const e of readdirIterate(client, fh)) {
        const attrs = await entryAttrs(client, fh, e);
        const childRel = rel ? `${rel}/${e.name}` : e.name;
        opts.onEntry?.(childRel, attrs);
        totals.usedBytes += attrs.used;
        switch (attrs.type) {
          case FileType.REG:
            totals.files++;
            totals.bytes += attrs.size;
            break;
          case FileType.DIR:
            totals.dirs++;
            next.push({ fh: await entryHandle(client, fh, e), rel: childRel });
            break;
          case FileType.LNK:
            totals.symlinks++;
            break;
          default:
            totals.others++;
        }
      }
    });
    level = next;
  }
  return totals;
}

/** Reads a whole file by path or handle. */
export async function readWholeFile(client: NfsClient, file: string | Buffer): Promise<Buffer> {
  const fh = typeof file === 'string' ? await resolvePath(client, file) : file;
  const attrs = await client.getattr(fh);
  if (attrs.type !== FileType.REG) throw new NfsError(21, 'NFS3.READ', 'not a regular file');
  const parts = [await client.readRange(fh, 0, attrs.size)];
  let offset = parts[0].length;
  // The file may have grown since GETATTR: read on until the server says eof.
  for (;;) {
    const res = await client.read(fh, offset, client.readSize);
    if (res.data.length > 0) parts.push(Buffer.from(res.data));
    offset += res.data.length;
    if (res.eof || res.data.length === 0) break;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

export interface WriteWholeFileOptions {
  /** Mode for a new file. Default 0o644. */
  mode?: number;
  stability?: 'unstable' | 'sync';
}

/**
 * Creates or truncates a file and writes `data` into it; returns its handle.
 * If the server restarts before the COMMIT (verifier change), the data is
 * written again once.
 */
export async function writeWholeFile(
  client: NfsClient,
  path: string,
  data: Buffer,
  opts: WriteWholeFileOptions = {},
): Promise<Buffer> {
  const { parent, name } = splitParent(path);
  const dir = await resolvePath(client, parent);
  const created = await client.create(dir, name, { mode: 'unchecked', attrs: { mode: opts.mode ?? 0o644, size: 0 } });
  for (let attempt = 0; ; attempt++) {
    try {
      await client.writeRange(created.handle, 0, data, { stability: opts.stability });
      return created.handle;
    } catch (err) {
      if (!(err instanceof WriteVerifierError) || attempt >= 1) throw err;
    }
  }
}
