import os from 'node:os';
import { z } from 'zod';

export const DEFAULTS = {
  socket: '/run/docker/plugins/netvol.sock',
  stateDir: '/var/lib/netvol',
  localPath: '/var/lib/netvol/volumes',
  timeoutSeconds: 20,
  dockerHost: 'unix:///run/docker.sock',
} as const;

const backendName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'backend names use a-z, 0-9, "_" and "-"');

/** The part of a backend block common to every type; the rest is checked by the type's own schema. */
export const backendCommonSchema = z.looseObject({
  type: z.string(),
  /** Let image volumes promise more space than the backend has free. */
  allowOvercommit: z.boolean().default(false),
  /**
   * Shared backends: seconds after which a host whose heartbeat has not changed counts as gone (its
   * attachments stop blocking Remove, its image volumes can be taken over). A host that cannot renew
   * for half of it stops its image volumes' data path. At most 40, so a Mount that waits for a silent
   * holder, and a Remove that waits to judge one, stay within dockerd's time limits.
   */
  leaseSeconds: z.number().int().min(5).max(40).default(30),
});

export const configSchema = z.strictObject({
  socket: z.string().startsWith('/').default(DEFAULTS.socket),
  stateDir: z.string().startsWith('/').default(DEFAULTS.stateDir),
  /** Where volumes are mounted for containers; defaults to <stateDir>/mounts. */
  mountRoot: z.string().startsWith('/').optional(),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  scope: z.enum(['auto', 'local', 'global']).default('auto'),
  defaultBackend: backendName.optional(),
  /** This host's name in heartbeat files on shared backends: unique per host, as hostnames are; short enough that `<hostId>.json` and its temporary name fit in a file name. */
  hostId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'use at most 200 letters, digits, ".", "_" and "-" (a hostname), starting with a letter or digit')
    .default(() => os.hostname()),
  /** dockerd's API socket: netvol lists its volumes there after it starts, so swarm sees the plugin (moby#23619). "" turns it off. */
  dockerHost: z
    .union([z.literal(''), z.string().regex(/^unix:\/\/\//, 'use unix:///path/to/docker.sock, or "" to turn it off')])
    .default(DEFAULTS.dockerHost),
  /**
   * The admin API's Unix socket (root only, 0600), which netvolctl speaks to for operations Docker
   * has no verb for. Default <stateDir>/admin.sock (reachable from the host also when netvol runs as
   * a managed plugin, whose stateDir is the host's); "" turns it off.
   */
  adminSocket: z.union([z.literal(''), z.string().startsWith('/')]).optional(),
  /**
   * Prometheus metrics over HTTP; off unless set. `listen` is an IP address and port, e.g.
   * 127.0.0.1:9911 (checked when the daemon starts, see metrics/listen.ts); `intervalSeconds` is
   * the pause between background measurements of every volume (the staleness of the usage metrics).
   */
  metrics: z
    .strictObject({
      listen: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'use host:port, e.g. 127.0.0.1:9911'),
      intervalSeconds: z.number().int().min(5).max(3600).default(60),
    })
    .optional(),
  /** Upper bound of any single backend call; kept well below dockerd's 60 s. */
  timeoutSeconds: z.number().positive().max(50).default(DEFAULTS.timeoutSeconds),
  backends: z
    .record(backendName, backendCommonSchema)
    .default(() => ({ local: { type: 'local', allowOvercommit: false, leaseSeconds: 30, path: DEFAULTS.localPath } }))
    .refine((b) => Object.keys(b).length > 0, 'configure at least one backend'),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface BackendConfig {
  name: string;
  type: string;
  allowOvercommit: boolean;
  leaseSeconds: number;
  /** The type-specific options, validated by the type's schema. */
  options: unknown;
}

export interface Config {
  socket: string;
  stateDir: string;
  mountRoot: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  scope: 'auto' | 'local' | 'global';
  defaultBackend: string;
  hostId: string;
  dockerHost: string;
  timeoutMs: number;
  /** The admin socket's path; '' when it is off. */
  adminSocket: string;
  metrics?: { listen: string; intervalSeconds: number };
  backends: readonly BackendConfig[];
}
