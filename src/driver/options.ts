import { z } from 'zod';
import { NetvolError, quoteUserValue, validationMessages } from '../errors';
import { formatSize, parseSize } from './sizes';

export { formatSize, parseSize };

export type Layout = 'directory' | 'image';
export type OnRemove = 'delete' | 'retain' | 'archive';

/** A volume's options after parsing: what create() acts on and what metadata records. */
export interface VolumeSpec {
  backend: string;
  layout: Layout;
  sizeBytes?: number;
  fs?: 'ext4' | 'xfs';
  uid?: number;
  gid?: number;
  mode?: number;
  onRemove: OnRemove;
}

const MiB = 1024 * 1024;

/**
 * The smallest image each filesystem is made at. xfs: mkfs.xfs (xfsprogs 5.19 and later) refuses
 * less than 300 MiB, since its log alone takes 64 MiB. ext4: mkfs.ext4 makes smaller ones (without
 * a journal below a few MiB), but its 4 MiB journal would leave little of a volume under 16 MiB.
 */
export const FS_MIN_SIZE = { ext4: 16 * MiB, xfs: 300 * MiB } as const;

const idText = z
  .string()
  .regex(/^\d{1,10}$/, 'must be a number such as 1000')
  .transform(Number)
  .refine((n) => n <= 4294967294, 'must be at most 4294967294');
const optionSchemas = {
  backend: z.string().min(1),
  size: z.string().transform((s, ctx) => {
    const n = parseSize(s);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be a size such as 512M, 10G or 1.5T' });
      return z.NEVER;
    }
    return Math.floor(n / 4096) * 4096;
  }),
  fs: z.enum(['ext4', 'xfs']),
  uid: idText,
  gid: idText,
  mode: z.string().regex(/^0?[0-7]{3,4}$/, 'must be octal such as 0755').transform((s) => parseInt(s, 8)),
  onRemove: z.enum(['delete', 'retain', 'archive']),
  /** A clone of this volume (clone.ts); not part of the spec. */
  from: z.string().min(1),
} as const;

export const ACCEPTED_OPTIONS = Object.keys(optionSchemas);

/** The `from` option of a Create (a clone's source), as given; undefined when absent. */
export function cloneSource(opts: unknown): unknown {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) return undefined;
  return Object.prototype.hasOwnProperty.call(opts, 'from') ? (opts as Record<string, unknown>).from : undefined;
}
const SECRET_OPTION = /pass|secret|key|token|credential|identity/i;

const errorMap = validationMessages();

function mib(n: number): string {
  return n % (1024 * MiB) === 0 ? `${n / (1024 * MiB)}G` : `${Math.ceil(n / MiB)}M`;
}

/**
 * Refuses a new image volume smaller than its filesystem's minimum, saying which sizes and
 * filesystems would do. Only new volumes: one made smaller by an older mkfs stays usable, and a
 * re-sent Create of it with the same options succeeds. `opts` are Docker's, for the size as written.
 */
export function refuseBelowMinimum(volume: string, spec: VolumeSpec, opts: unknown): void {
  if (spec.layout !== 'image' || spec.sizeBytes === undefined) return;
  const fs = spec.fs ?? 'ext4';
  const min = FS_MIN_SIZE[fs];
  const sizeBytes = spec.sizeBytes;
  if (sizeBytes >= min) return;
  const written = (opts as Record<string, unknown> | null | undefined)?.size;
  const sizeText = typeof written === 'string' ? written.trim() : mib(sizeBytes);
  const why = fs === 'xfs' ? ' (mkfs.xfs makes none smaller)' : '';
  const others = (Object.keys(FS_MIN_SIZE) as Array<'ext4' | 'xfs'>).filter((f) => f !== fs && sizeBytes >= FS_MIN_SIZE[f]);
  const alternative = others.map((f) => `, or fs=${f} (minimum ${mib(FS_MIN_SIZE[f])})`).join('');
  throw new NetvolError(
    'INVALID_OPTION',
    `volume ${volume}: size=${sizeText} is below the ${mib(min)} minimum of an ${fs} image${why}; use size=${mib(min)} or more${alternative}`,
    { volume },
  );
}

/**
 * Parses Docker's `Opts` (null when a container creates a volume implicitly) against the allow-list.
 * Errors name the volume and the option, and list what is accepted. The filesystem's minimum size
 * is checked apart (refuseBelowMinimum), for new volumes only.
 */
export function parseVolumeOptions(volume: string, opts: unknown, defaultBackend: string): VolumeSpec {
  if (opts !== null && opts !== undefined && (typeof opts !== 'object' || Array.isArray(opts))) {
    throw new NetvolError('INVALID_OPTION', `volume ${volume}: options must be a map of strings`, { volume });
  }
  const raw = (opts ?? {}) as Record<string, unknown>;
  const parsed: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!Object.prototype.hasOwnProperty.call(optionSchemas, key)) {
      if (SECRET_OPTION.test(key)) {
        throw new NetvolError(
          'INVALID_OPTION',
          `volume ${volume}: option ${quoteUserValue(key)} is refused: credentials never go in volume options; put them in the backend's entry of the netvol daemon config`,
          { volume },
        );
      }
      throw new NetvolError('INVALID_OPTION', `volume ${volume}: invalid option ${quoteUserValue(key)}: accepted options are ${ACCEPTED_OPTIONS.join(', ')}`, { volume });
    }
    const schema = optionSchemas[key as keyof typeof optionSchemas] as z.ZodType;
    const result = schema.safeParse(typeof value === 'string' ? value.trim() : value, { error: errorMap });
    if (!result.success) {
      const why = result.error.issues[0]?.message ?? 'is not a valid value';
      throw new NetvolError('INVALID_OPTION', `volume ${volume}: invalid value ${quoteUserValue(value)} for option "${key}": ${why}`, { volume });
    }
    parsed[key] = result.data;
  }
  if (parsed.fs !== undefined && parsed.size === undefined) {
    throw new NetvolError('INVALID_OPTION', `volume ${volume}: option "fs" needs "size": only a volume with a size has its own filesystem`, { volume });
  }
  const sizeBytes = parsed.size as number | undefined;
  const fs = sizeBytes === undefined ? undefined : ((parsed.fs as 'ext4' | 'xfs' | undefined) ?? 'ext4');
  return {
    backend: (parsed.backend as string | undefined) ?? defaultBackend,
    layout: sizeBytes === undefined ? 'directory' : 'image',
    sizeBytes,
    fs,
    uid: parsed.uid as number | undefined,
    gid: parsed.gid as number | undefined,
    mode: parsed.mode as number | undefined,
    onRemove: (parsed.onRemove as OnRemove | undefined) ?? 'delete',
  };
}

/** The options (by their -o names) in which two specs differ, for the "exists with different options" error. */
export function specDifferences(a: VolumeSpec, b: VolumeSpec): string[] {
  const keys: Array<[keyof VolumeSpec, string]> = [
    ['backend', 'backend'], ['sizeBytes', 'size'], ['fs', 'fs'], ['uid', 'uid'], ['gid', 'gid'], ['mode', 'mode'], ['onRemove', 'onRemove'],
  ];
  return keys.filter(([k]) => a[k] !== b[k]).map(([, option]) => option);
}
