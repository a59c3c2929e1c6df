import { formatSize } from './options';
import type { VolumeMeta } from './catalog';

export interface Usage {
  sizeBytes?: number;
  usedBytes: number;
  availableBytes: number;
}

/** The Status map `docker volume inspect` prints. */
export function buildStatus(meta: VolumeMeta, usage: Usage | undefined, mounts: Record<string, number>, extra: Record<string, unknown>): Record<string, unknown> {
  const status: Record<string, unknown> = {
    backend: meta.spec.backend,
    layout: meta.spec.layout,
  };
  if (meta.spec.layout === 'image') {
    status.sizeBytes = meta.spec.sizeBytes;
    status.fs = meta.spec.fs;
  }
  if (usage) {
    status.usedBytes = usage.usedBytes;
    status.availableBytes = usage.availableBytes;
    status.usage = usageText(usage);
  }
  status.onRemove = meta.spec.onRemove;
  status.createdBy = meta.createdBy;
  status.mounts = Object.keys(mounts);
  status.mountCount = Object.values(mounts).reduce((a, b) => a + b, 0);
  return { ...status, ...extra };
}

/** "12.0 MiB of 64.0 MiB (19%)" for an image; "12.0 MiB used, 40.2 GiB available" for a folder. */
export function usageText(u: Usage): string {
  if (u.sizeBytes !== undefined && u.sizeBytes > 0) {
    const pct = Math.round((u.usedBytes / u.sizeBytes) * 100);
    return `${formatSize(u.usedBytes)} of ${formatSize(u.sizeBytes)} (${pct}%)`;
  }
  return `${formatSize(u.usedBytes)} used, ${formatSize(u.availableBytes)} available`;
}
