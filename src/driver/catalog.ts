import { z } from 'zod';
import { VOLUME_FILE, type Backend } from '../backends';
import type { VolumeSpec } from './options';

/** The metadata file in each volume folder on a backend (see backends/layout). */
export const META_FILE = VOLUME_FILE;

const specSchema = z.object({
  backend: z.string(),
  layout: z.enum(['directory', 'image']),
  sizeBytes: z.number().int().positive().optional(),
  fs: z.enum(['ext4', 'xfs']).optional(),
  uid: z.number().int().optional(),
  gid: z.number().int().optional(),
  mode: z.number().int().optional(),
  onRemove: z.enum(['delete', 'retain', 'archive']),
});

const metaSchema = z.object({
  version: z.literal(1),
  name: z.string(),
  createdAt: z.string(),
  createdBy: z.string(),
  spec: specSchema,
  /** Set when the volume was removed with onRemove=retain: hidden, adopted by a matching Create. */
  retained: z.boolean().optional(),
});

export type VolumeMeta = z.infer<typeof metaSchema> & { spec: VolumeSpec };

/** Reads a volume's metadata; undefined when the folder is not a netvol volume (or an archive of one). */
export async function readMeta(backend: Backend, name: string): Promise<VolumeMeta | undefined> {
  const raw = await backend.readFile(name, META_FILE);
  if (!raw) return undefined;
  try {
    const parsed = metaSchema.safeParse(JSON.parse(raw.toString('utf8')));
    if (!parsed.success || parsed.data.name !== name) return undefined;
    return { ...parsed.data, spec: { ...parsed.data.spec, backend: backend.name } };
  } catch {
    return undefined;
  }
}

export async function writeMeta(backend: Backend, meta: VolumeMeta): Promise<void> {
  await backend.writeFile(meta.name, META_FILE, Buffer.from(`${JSON.stringify(meta, null, 1)}\n`));
}

/** Every live (not retained) volume on a backend, reading metadata a few folders at a time. */
export async function listMetas(backend: Backend, concurrency = 16): Promise<VolumeMeta[]> {
  const folders = await backend.listFolders();
  const out: VolumeMeta[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < folders.length) {
      const meta = await readMeta(backend, folders[next++]);
      if (meta && !meta.retained) out.push(meta);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, folders.length) }, worker));
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
