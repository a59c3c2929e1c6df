import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { RestoreResult, VerifyResult } from '../../driver';
import { AdminClient, CliError, readJson } from '../client';
import { TransferProgress } from '../transfer-progress';
// The leaf module, not system's index: netvolctl starts without loading the daemon's code.
import { describeOwnFile } from '../../system/peer-files';
import { AdminOptions, clientFor, withAdminOptions } from './common';

/** The trailer of a backup that finished well (admin/backup.ts). */
const RESULT_TRAILER = 'x-netvol-backup-result';
/** The header of a direct transfer's answer (admin/direct.ts): `yes`, or `unavailable` on a refusal. */
const DIRECT_HEADER = 'x-netvol-direct';

/** Whether a file name asks for zstd compression. */
function isZstd(file: string): boolean {
  return /\.(zst|zstd)$/i.test(file);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `-o key=value` pairs as an options object (as `docker volume create -o` takes them). */
function parseOptions(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new CliError(`option ${JSON.stringify(p)} is not key=value (e.g. -o size=1g)`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** Waits for a helper (zstd) and fails with its stderr when it did not exit 0. */
function exitOf(child: ChildProcess, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new CliError(`cannot run ${what}: ${err.message} (is it installed?)`)));
    child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new CliError(`${what} failed: ${stderr.trim().split('\n')[0] || (signal ? `killed by ${signal}` : `exit ${code}`)}`))));
  });
}

/** The backup request; `direct` names the archive file the daemon's tar is to write itself (see admin/direct.ts). */
async function requestBackup(client: AdminClient, name: string, query: URLSearchParams): Promise<http.IncomingMessage> {
  const { req, res } = client.open('GET', `/v1/volumes/${encodeURIComponent(name)}/backup?${query}`);
  req.end();
  return res.catch((err: Error) => {
    throw new CliError(`the backup of ${name} failed: ${err.message}`);
  });
}

/** A direct transfer was refused because the daemon cannot reach the client's file: send the archive through the socket. */
function directUnavailable(res: http.IncomingMessage): boolean {
  if (res.statusCode !== 409 || res.headers[DIRECT_HEADER] !== 'unavailable') return false;
  res.resume();
  return true;
}

/**
 * A direct answer's NDJSON (admin/direct.ts): progress lines fed to `progress`, then the last
 * line's result; an error line, or an answer cut before it, throws.
 */
async function directResult(res: http.IncomingMessage, progress: TransferProgress): Promise<unknown> {
  let rest = '';
  let last: { result?: unknown; error?: string; code?: string } | undefined;
  for await (const chunk of res) {
    rest += String(chunk);
    let i: number;
    while ((i = rest.indexOf('\n')) >= 0) {
      const line = JSON.parse(rest.slice(0, i)) as { bytes?: number; result?: unknown; error?: string; code?: string };
      rest = rest.slice(i + 1);
      if (typeof line.bytes === 'number') progress.set(line.bytes);
      else last = line;
    }
  }
  if (last?.error) throw new CliError(last.error);
  if (!last || !('result' in last)) throw new CliError('the daemon\'s answer ended before it said how tar finished (see its log)');
  return last.result;
}

/**
 * netvolctl backup VOL [-o FILE|-]: written to FILE (atomically, zstd when it says .zst) or stdout.
 * To a FILE on the daemon's host the daemon's tar writes it directly; otherwise (stdout, a daemon
 * that cannot open the file, --no-direct) the archive streams through the admin socket.
 */
async function backup(name: string, opts: AdminOptions & { output: string; consistent?: boolean; maxFreeze: string; quiet?: boolean; direct?: boolean }): Promise<void> {
  // Only a backup that got to its end exits 0: should a stream ever stall with nothing left to wait for, Node exits with this code.
  process.exitCode = 1;
  const toStdout = opts.output === '-';
  if (toStdout && process.stdout.isTTY) throw new CliError('refusing to write a tar archive to a terminal: give -o FILE, or pipe the output (netvolctl backup VOL | …)');
  const client = await clientFor(opts);
  const query = new URLSearchParams({ ...(opts.consistent ? { consistent: '1' } : {}), maxFreeze: opts.maxFreeze });
  const target = toStdout ? undefined : path.resolve(opts.output);
  const temp = target ? path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.part`) : undefined;
  let ok = false;
  let file: fs.FileHandle | undefined;
  let progress: TransferProgress | undefined;
  try {
    if (temp) file = await fs.open(temp, 'wx', 0o600);
    let res: http.IncomingMessage | undefined;
    if (file && opts.direct !== false) {
      const direct = new URLSearchParams(query);
      direct.set('direct', describeOwnFile(file.fd));
      if (isZstd(target!)) direct.set('zstd', '1');
      res = await requestBackup(client, name, direct);
      if (directUnavailable(res)) res = undefined;
    }
    res ??= await requestBackup(client, name, query);
    if (res.statusCode !== 200) {
      await readJson(res);
      throw new CliError(`the daemon answered ${res.statusCode} to the backup of ${name}`);
    }
    if (res.headers['x-netvol-point-in-time'] !== 'yes') {
      const why = decodeURIComponent(String(res.headers['x-netvol-note'] ?? ''));
      process.stderr.write(`netvolctl: note: this backup of ${name} reads the live filesystem and is not point in time${why ? ` (${why})` : ''}; files written meanwhile may be caught half-way${why.includes('directory') ? '' : ': --consistent freezes an image volume for the whole run'}\n`);
    }
    const estimate = Number(res.headers['x-netvol-estimated-bytes']);
    progress = new TransferProgress(`backup ${name}`, Number.isFinite(estimate) ? estimate : undefined, !opts.quiet && process.stderr.isTTY === true);
    if (res.headers[DIRECT_HEADER] === 'yes') {
      await directResult(res, progress);
    } else {
      let sink: Writable;
      let helper: Promise<void> | undefined;
      if (file) {
        if (isZstd(target!)) {
          const zstd = spawn('zstd', ['-q', '-T0', '-3', '-c', '-'], { stdio: ['pipe', file.fd, 'pipe'] });
          helper = exitOf(zstd, 'zstd');
          sink = zstd.stdin!;
        } else {
          // The stream owns (and closes) its own descriptor; the one above is kept for the fsync.
          sink = createWriteStream(temp!, { flags: 'r+', highWaterMark: 1 << 20 });
        }
      } else {
        sink = process.stdout;
      }
      await pipeline(res, progress.meter(), sink, { end: sink !== process.stdout });
      await helper;
      if (res.trailers[RESULT_TRAILER] !== 'ok') throw new CliError('the stream ended without the daemon\'s confirmation that tar finished');
    }
    if (file) {
      await file.sync();
      await file.close();
      file = undefined;
      await fs.rename(temp!, target!);
    }
    ok = true;
    process.exitCode = 0;
  } catch (err) {
    const why = err instanceof CliError ? err.message : (err as Error).message === 'aborted' ? 'the daemon cut the stream (see its log)' : (err as Error).message;
    throw new CliError(`the backup of ${name} failed: ${why}; ${target ? `${opts.output} was not written` : 'the archive written to stdout is incomplete: do not use it'}`);
  } finally {
    progress?.stop(ok);
    await file?.close().catch(() => undefined);
    if (!ok && temp) await fs.rm(temp, { force: true }).catch(() => undefined);
  }
  if (!opts.quiet && target && process.stderr.isTTY) process.stderr.write(`netvolctl: backup of ${name} written to ${opts.output}\n`);
}

/**
 * The archive FILE (or stdin for `-`) as a stream, decompressed when its name says .zst, and a
 * promise that fails when reading or decompressing failed: the upload must then be cut off, never
 * ended, so the daemon cannot take a short archive for a whole one.
 */
async function archiveSource(file: string, progress: TransferProgress): Promise<{ stream: Readable; done: Promise<void> }> {
  const raw: Readable = file === '-' ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
  const metered = raw.pipe(progress.meter());
  raw.once('error', (err) => metered.destroy(err));
  if (!isZstd(file)) {
    const done = new Promise<void>((resolve, reject) => {
      metered.once('end', resolve);
      metered.once('error', reject);
    });
    return { stream: metered, done };
  }
  const zstd = spawn('zstd', ['-d', '-q', '-c', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  metered.pipe(zstd.stdin);
  zstd.stdin.on('error', () => undefined);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  zstd.stdout.pipe(out, { end: false });
  const done = Promise.all([
    exitOf(zstd, `zstd (decompressing ${file})`),
    new Promise<void>((resolve, reject) => {
      metered.once('end', resolve);
      metered.once('error', reject);
    }),
  ]).then(() => undefined);
  // The end of the decompressed stream is passed on only once zstd said the whole input was good.
  zstd.stdout.once('end', () => void done.then(() => out.end(), (err: Error) => out.destroy(err)));
  done.catch((err: Error) => out.destroy(err));
  return { stream: out, done };
}

/** Sends an archive as a request body; resolves with the daemon's JSON answer. */
async function upload<T>(client: AdminClient, method: string, urlPath: string, file: string, label: string, quiet: boolean): Promise<T> {
  const total = file === '-' ? undefined : (await fs.stat(file)).size;
  const progress = new TransferProgress(label, total, !quiet && process.stderr.isTTY === true);
  let ok = false;
  try {
    const source = await archiveSource(file, progress);
    const { req, res } = client.open(method, urlPath, { 'content-type': 'application/x-tar', 'transfer-encoding': 'chunked' });
    req.on('error', () => undefined); // reported through `res` (client.open) or sendError
    let sendError: Error | undefined;
    source.stream.once('error', (err: Error) => {
      sendError = err;
      req.destroy(err);
    });
    source.stream.pipe(req);
    let answer: http.IncomingMessage;
    try {
      answer = await res;
    } catch (err) {
      if (sendError) throw new CliError(`cannot read ${file}: ${sendError.message}`);
      throw err;
    }
    // The daemon may answer before it has read everything (a refusal): stop sending.
    source.stream.unpipe(req);
    const out = (await readJson(answer)) as T;
    if (sendError) throw new CliError(`cannot read ${file}: ${sendError.message}`);
    ok = true;
    return out;
  } finally {
    progress.stop(ok);
  }
}

/** The daemon's tar reads FILE itself (admin/direct.ts); undefined when the daemon cannot open it. */
async function restoreDirect(client: AdminClient, name: string, file: string, force: boolean, quiet: boolean): Promise<RestoreResult | undefined> {
  const handle = await fs.open(file, 'r');
  let progress: TransferProgress | undefined;
  let ok = false;
  try {
    const query = new URLSearchParams({ direct: describeOwnFile(handle.fd), ...(isZstd(file) ? { zstd: '1' } : {}), ...(force ? { force: '1' } : {}) });
    const { req, res: answer } = client.open('PUT', `/v1/volumes/${encodeURIComponent(name)}/restore?${query}`, { 'content-length': '0' });
    req.end();
    const res = await answer;
    if (directUnavailable(res)) return undefined;
    if (res.statusCode !== 200 || res.headers[DIRECT_HEADER] !== 'yes') {
      await readJson(res);
      throw new CliError(`the daemon answered ${res.statusCode} to the restore of ${name}`);
    }
    // The daemon counts what tar read: the archive as stored, or after decompression.
    progress = new TransferProgress(`restore ${name}`, isZstd(file) ? undefined : (await handle.stat()).size, !quiet && process.stderr.isTTY === true);
    const result = (await directResult(res, progress)) as RestoreResult;
    ok = true;
    return result;
  } finally {
    progress?.stop(ok);
    await handle.close();
  }
}

/** netvolctl restore FILE VOL: optionally creates VOL, extracts FILE into it through the daemon, optionally verifies. */
async function restore(file: string, name: string, opts: AdminOptions & { create?: boolean; opt: string[]; force?: boolean; verify?: boolean; quiet?: boolean; json?: boolean; direct?: boolean }): Promise<void> {
  process.exitCode = 1;
  if (opts.verify && file === '-') throw new CliError('--verify reads the archive a second time, so it needs a FILE, not stdin');
  if (opts.opt.length > 0 && !opts.create) throw new CliError('-o sets the options of a new volume: add --create');
  if (file !== '-') await fs.access(file).catch(() => {
    throw new CliError(`cannot read the archive ${file}: no such file or no permission`);
  });
  const client = await clientFor(opts);
  const quiet = opts.quiet === true;
  if (opts.create) {
    await client.json('POST', '/v1/volumes', { name, options: parseOptions(opts.opt) });
    if (!quiet && !opts.json) process.stderr.write(`netvolctl: created volume ${name}\n`);
  }
  const q = opts.force ? '?force=1' : '';
  let result: RestoreResult | undefined;
  try {
    if (file !== '-' && opts.direct !== false) result = await restoreDirect(client, name, file, opts.force === true, quiet);
    result ??= await upload<RestoreResult>(client, 'PUT', `/v1/volumes/${encodeURIComponent(name)}/restore${q}`, file, `restore ${name}`, quiet);
  } catch (err) {
    throw new CliError(`${(err as Error).message}${opts.create ? ` (volume ${name} was created for it: remove it with docker volume rm ${name}, or restore again with --force)` : ''}`);
  }
  let verify: VerifyResult | undefined;
  if (opts.verify) verify = await upload<VerifyResult>(client, 'POST', `/v1/volumes/${encodeURIComponent(name)}/verify`, file, `verify ${name}`, quiet);
  if (opts.json) process.stdout.write(`${JSON.stringify({ restore: result, verify }, null, 2)}\n`);
  else if (!quiet) process.stderr.write(`netvolctl: restored ${file} into ${name}${verify?.ok ? '; verified: every file matches the archive' : ''}\n`);
  process.exitCode = 0;
  if (verify && !verify.ok) {
    throw new CliError(`volume ${name} differs from ${file} in ${verify.differenceCount} place(s):\n  ${verify.differences.join('\n  ')}`);
  }
}

/** `netvolctl backup` and `netvolctl restore`. */
export function backupCommands(program: Command): void {
  withAdminOptions(
    program
      .command('backup')
      .description('stream a volume as a tar archive (owners, modes, links, sparse files, xattrs kept) to FILE or stdout; point in time where the backend can snapshot cheaply')
      .argument('<volume>', 'volume name')
      .option('-o, --output <file>', 'write to FILE (zstd-compressed when it ends in .zst or .zstd; written under a temporary name, renamed when complete), or - for stdout', '-')
      .option('--consistent', 'freeze an image volume for the whole backup when no snapshot is possible (writers wait meanwhile)')
      .option('--max-freeze <seconds>', 'with --consistent: the longest the volume may stay frozen; past it the volume is thawed and the backup fails', '600')
      .option('-q, --quiet', 'no progress bar or notes except errors')
      .option('--no-direct', 'stream the archive through the admin socket even where the daemon could write FILE itself'),
  ).action((name: string, opts) => backup(name, opts));

  withAdminOptions(
    program
      .command('restore')
      .description('extract a tar archive (from netvolctl backup, or any tar) into an empty volume, or a new one with --create')
      .argument('<file>', 'the archive (.zst/.zstd is decompressed), or - for stdin')
      .argument('<volume>', 'volume name')
      .option('--create', 'create the volume first, as docker volume create -d netvol would')
      .option('-o, --opt <key=value>', 'with --create: a volume option (size=, backend=, fs=, …); repeatable', collect, [])
      .option('--force', 'extract into a volume that is not empty (files of the same name are replaced, others stay)')
      .option('--verify', 'afterwards compare every file with the archive (contents, sizes, modes, owners, times, links)')
      .option('-q, --quiet', 'no progress bar or messages except errors')
      .option('--json', 'print the result as JSON')
      .option('--no-direct', 'send the archive through the admin socket even where the daemon could read FILE itself'),
  ).action((file: string, name: string, opts) => restore(file, name, opts));
}
