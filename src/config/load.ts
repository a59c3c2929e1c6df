import { promises as fs } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { backendType, backendTypes } from '../backends';
import { issuesText, NetvolError, registerSecret, validationMessages } from '../errors';
import { backendCommonSchema, BackendConfig, Config, configSchema, DEFAULTS } from './schema';

function configError(source: string, detail: string): NetvolError {
  return new NetvolError('CONFIG', `invalid configuration in ${source}: ${detail}`);
}

/**
 * Validates a parsed config document and returns the frozen, typed config. Unknown keys anywhere are
 * refused with their path; each backend block is checked against its type's own schema.
 */
export function buildConfig(doc: unknown, source: string, env: NodeJS.ProcessEnv = {}): Config {
  const parsed = configSchema.safeParse(doc ?? {}, { error: validationMessages() });
  if (!parsed.success) throw configError(source, issuesText(parsed.error, '', 'the configuration'));
  const raw = parsed.data;

  const backends: BackendConfig[] = [];
  for (const [name, block] of Object.entries(raw.backends)) {
    const { type, allowOvercommit, leaseSeconds, ...rest } = block;
    const kind = backendType(type);
    if (!kind) {
      throw configError(source, `backends.${name}.type: unknown backend type "${type}"; known types are ${Object.keys(backendTypes()).join(', ')}`);
    }
    const options = kind.optionsSchema.safeParse(rest, { error: validationMessages(Object.keys(backendCommonSchema.shape)) });
    if (!options.success) throw configError(source, issuesText(options.error, `backends.${name}`));
    for (const secret of kind.secrets(options.data)) registerSecret(secret);
    backends.push(Object.freeze({ name, type, allowOvercommit, leaseSeconds, options: Object.freeze(options.data) }));
  }

  const defaultBackend = raw.defaultBackend ?? (raw.backends.local ? 'local' : backends[0].name);
  if (!backends.some((b) => b.name === defaultBackend)) {
    throw configError(source, `defaultBackend: "${defaultBackend}" is not one of the configured backends (${backends.map((b) => b.name).join(', ')})`);
  }
  const logLevel = env.NETVOL_LOG_LEVEL ?? raw.logLevel;
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) {
    throw configError('NETVOL_LOG_LEVEL', `"${logLevel}" is not one of error, warn, info, debug`);
  }

  return Object.freeze({
    socket: env.NETVOL_SOCKET ?? raw.socket,
    stateDir: raw.stateDir,
    mountRoot: raw.mountRoot ?? path.join(raw.stateDir, 'mounts'),
    logLevel: logLevel as Config['logLevel'],
    scope: raw.scope,
    defaultBackend,
    hostId: raw.hostId,
    dockerHost: raw.dockerHost,
    timeoutMs: raw.timeoutSeconds * 1000,
    adminSocket: env.NETVOL_ADMIN_SOCKET ?? raw.adminSocket ?? path.join(raw.stateDir, 'admin.sock'),
    metrics: raw.metrics ? Object.freeze({ ...raw.metrics }) : undefined,
    backends: Object.freeze(backends),
  });
}

/** Reads the config named by `file` (YAML or JSON), or the built-in default when there is none. */
export async function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  if (!file) return buildConfig({}, 'the built-in default configuration', env);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw configError(file, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw configError(file, `not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return buildConfig(doc, file, env);
}

export { DEFAULTS };
