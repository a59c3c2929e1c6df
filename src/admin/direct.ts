import type { Request, Response } from 'express';
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log';
import { openPeerFile, parsePeerFile } from '../system';
import { errorBody } from './http';

/**
 * Direct transfers: a client on this host names its archive file (`?direct=pid.fd.dev.ino`, see
 * system/peer-files.ts; `&zstd=1` when tar must (de)compress it) and the daemon's tar writes or
 * reads that file itself, so the archive does not cross the admin socket. Where the daemon cannot
 * open it (a managed plugin in its own pid namespace, zstd not installed beside the daemon) the
 * answer is 409 with `x-netvol-direct: unavailable`, and the client sends the archive through the
 * socket instead.
 *
 * A direct answer is NDJSON: `{"bytes":N}` twice a second while tar runs (archive bytes written or
 * read so far, before compression), then one last line, `{"result":…}` or `{"error":…,"code":…}`.
 */
export const DIRECT_HEADER = 'x-netvol-direct';
const PROGRESS_MS = 500;

export interface DirectFile {
  handle: FileHandle;
  zstd: boolean;
}

/**
 * The client's file when the request asks for a direct transfer; undefined when it does not. When
 * it cannot be opened the request is answered (409) and `null` returned.
 */
export async function openDirect(req: Request, res: Response, mode: 'read' | 'write', log: Logger): Promise<DirectFile | undefined | null> {
  if (req.query.direct === undefined) return undefined;
  const name = String(req.params.name);
  const peer = parsePeerFile(req.query.direct);
  const zstd = req.query.zstd === '1';
  let why: string;
  if (!peer) why = 'the direct parameter is not pid.fd.dev.ino';
  else if (zstd && !(await (zstdFound ??= onPath('zstd')))) why = 'zstd is not installed where the daemon runs';
  else {
    try {
      return { handle: await openPeerFile(peer, mode), zstd };
    } catch (err) {
      why = (err as Error).message;
    }
  }
  log.debug('direct transfer unavailable: the client sends the archive through the socket', { volume: name, why });
  res.status(409).setHeader(DIRECT_HEADER, 'unavailable');
  res.json({ error: `volume ${name}: the daemon cannot open the client's archive (${why}): send it through the socket`, code: 'PERMISSION' });
  return null;
}

/** Answers a direct transfer that has started: progress lines until `work` settles, then its result or error. */
export async function answerWithProgress<T>(res: Response, headers: Record<string, string>, read: () => number, work: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', [DIRECT_HEADER]: 'yes', ...headers });
  res.flushHeaders();
  const line = (v: unknown) => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(v)}\n`);
  };
  let last = -1;
  const tick = setInterval(() => {
    const bytes = read();
    if (bytes !== last) line({ bytes: (last = bytes) });
  }, PROGRESS_MS);
  try {
    const value = await work;
    line({ result: value ?? {} });
    return { ok: true, value };
  } catch (error) {
    line(errorBody(error));
    return { ok: false, error };
  } finally {
    clearInterval(tick);
    if (!res.writableEnded && !res.destroyed) res.end();
  }
}

let zstdFound: Promise<boolean> | undefined;

/** Whether `program` is an executable on this process's PATH (tar runs zstd by name). */
async function onPath(program: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir && (await fs.access(path.join(dir, program), constants.X_OK).then(() => true, () => false))) return true;
  }
  return false;
}
