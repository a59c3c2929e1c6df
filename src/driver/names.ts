import { createHash } from 'node:crypto';
import { NetvolError } from '../errors';

/** Docker's rule for volume names (moby volume/local: [a-zA-Z0-9][a-zA-Z0-9_.-]+), capped at 255. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * Refuses a name before any storage is touched. The rule also keeps names safe as path elements:
 * no slash, and "." / ".." cannot match (the first character is alphanumeric). Names containing
 * ".archive-" are reserved for archived volumes.
 */
export function validateVolumeName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new NetvolError('INVALID_NAME', 'volume name is empty: give a name of 2 to 255 characters from [a-zA-Z0-9_.-]');
  }
  const shown = name.length > 60 ? `${name.slice(0, 60)}…` : name;
  if (name.length > 255) {
    throw new NetvolError('INVALID_NAME', `volume name "${shown}" is ${name.length} characters long: the limit is 255`, { volume: shown });
  }
  if (!VOLUME_NAME.test(name)) {
    throw new NetvolError(
      'INVALID_NAME',
      `volume name "${shown}" is not allowed: use at least 2 characters from [a-zA-Z0-9_.-], starting with a letter or digit`,
      { volume: shown },
    );
  }
  if (name.includes(ARCHIVE_MARK)) {
    throw new NetvolError('INVALID_NAME', `volume name "${name}" is reserved: names containing "${ARCHIVE_MARK}" are archives`, { volume: name });
  }
  return name;
}

export const ARCHIVE_MARK = '.archive-';

/** The longest folder name the filesystems under a backend take (NAME_MAX); names here are ASCII. */
const MAX_FOLDER_NAME = 255;
/** Hex digits of sha256(full name) that keep two shortened archives of similar names apart. */
const ARCHIVE_HASH_LENGTH = 12;

/**
 * The folder name an archived volume is renamed to, e.g. data.archive-20261123T101500Z. A name too
 * long for that (over 230 characters) keeps as much of its start as fits and gains a short hash of
 * the whole name, so the archive always fits in a folder name and can still be told apart and
 * recognised: <start of name>.archive-<stamp>-<hash>.
 */
export function archiveName(name: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const whole = `${name}${ARCHIVE_MARK}${stamp}`;
  if (Buffer.byteLength(whole) <= MAX_FOLDER_NAME) return whole;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, ARCHIVE_HASH_LENGTH);
  const tail = `${ARCHIVE_MARK}${stamp}-${hash}`;
  return `${name.slice(0, MAX_FOLDER_NAME - tail.length)}${tail}`;
}
