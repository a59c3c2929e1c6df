import { createHash, randomBytes } from 'node:crypto';

/**
 * The one place that names what netvol keeps on a backend. Under the backend's root:
 *
 *   <volume>/volume.json          the volume's shared metadata; its presence marks a finished volume
 *   <volume>/data/                directory layout: the files containers see
 *   <volume>/data/.netvol-unlinked/  userspace NFS mount: files removed while open, until their last close
 *   <volume>/data.img             image layout: a filesystem image, loop-mounted on the host using it
 *   <volume>/removing.json        exclusive marker of a removal in progress (hosts sharing the backend)
 *   <volume>.archive-<stamp>[-h]/ an archived volume (onRemove=archive)
 *   .netvol-hosts/<hostId>.json   one heartbeat file per host: what it has attached, and how
 *   .netvol-trash-<volume>-<hex>/ a removed volume's folder, being deleted in the background
 *   .netvol-probe-<hex>           written and removed at open to prove the root is writable
 *   <file>.<12 hex>.tmp           an atomic write in flight (renamed over <file> when complete;
 *                                 <file>.<pid>.tmp from local backends of earlier versions)
 *
 * Names starting with a dot are never volumes (volume names start with a letter or digit).
 */
export const VOLUME_FILE = 'volume.json';
export const DATA_DIR = 'data';
export const IMAGE_FILE = 'data.img';
export const REMOVING_FILE = 'removing.json';
export const HOSTS_FOLDER = '.netvol-hosts';
export const TRASH_PREFIX = '.netvol-trash-';
export const PROBE_PREFIX = '.netvol-probe-';
export const ARCHIVE_MARK = '.archive-';

/** The longest folder name the filesystems under a backend take (NAME_MAX); names here are ASCII. */
const MAX_FOLDER_NAME = 255;
/** Hex digits of sha256(full name) that keep two shortened archives of similar names apart. */
const ARCHIVE_HASH_LENGTH = 12;

/** Whether a folder under the root is netvol's own bookkeeping (hosts, trash, probes), never a volume. */
export function isHiddenName(name: string): boolean {
  return name.startsWith('.');
}

/** A fresh trash name for a volume's folder: the prefix, as much of the name as fits in 255 bytes, a random suffix. */
export function trashName(volume: string): string {
  const suffix = `-${randomBytes(4).toString('hex')}`;
  const room = MAX_FOLDER_NAME - TRASH_PREFIX.length - suffix.length;
  return `${TRASH_PREFIX}${volume.slice(0, room)}${suffix}`;
}

/** A fresh name for the probe file written at open. */
export function probeName(): string {
  return `${PROBE_PREFIX}${randomBytes(4).toString('hex')}`;
}

/**
 * writeFile() writes `<file>.<12 hex>.tmp` next to the target, then renames it over the target:
 * listFiles() must not show such a file, left behind or in flight.
 */
export function tempName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`;
}

/** A temporary name of writeFile(), or `<file>.<pid>.tmp`, which earlier versions of the local backend wrote. */
export function isTempName(name: string): boolean {
  return /\.([0-9a-f]{12}|\d+)\.tmp$/.test(name);
}

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

/** Whether a folder under the root is an archived volume. */
export function isArchiveName(name: string): boolean {
  return name.includes(ARCHIVE_MARK);
}
