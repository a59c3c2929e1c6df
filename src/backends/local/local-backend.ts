import { z } from 'zod';
import { FolderBackend } from '../folder/folder-backend';
import type { BackendType } from '../types';
import { LocalTree } from './local-tree';

export const localOptionsSchema = z.strictObject({
  /** Folder holding one sub-folder per volume. Created at start if missing. */
  path: z.string().startsWith('/', 'must be an absolute path'),
});
export type LocalOptions = z.infer<typeof localOptionsSchema>;

const capabilities = Object.freeze({ networked: false, sharedAcrossHosts: false, imageVolumes: true, atomicRename: true, symlinkAttributes: true });

/** Volumes in a folder of this host: the embedded default. A volume's data path is its folder itself. */
export const localBackendType = {
  type: 'local',
  description: 'volumes in a folder of this host',
  capabilities,
  optionsSchema: localOptionsSchema,
  secrets: () => [],
  create: (options, ctx) => new FolderBackend({ type: 'local', capabilities, tree: new LocalTree(ctx.name, options.path) }, ctx),
} satisfies BackendType<LocalOptions>;
