/**
 * A backend built in-process the way the daemon builds it from its config (the options go through the
 * type's own schema), with every log line it writes kept: what the backend tests of each type hold.
 */
import type { Backend, BackendType } from '../../src/backends';
import { NetvolError } from '../../src/errors';
import { capturingLogger } from './logs';

export interface BackendUnderTest {
  backend: Backend;
  workDir: string;
  /** Every log line the backend wrote. */
  logs: string[];
  /** Closes the backend, ends what it left attached, removes its workDir. */
  cleanup(): Promise<void>;
}

export interface BuildOptions {
  /** The backend's name: its errors start with "backend <name>: ". */
  name: string;
  /** The backend's private folder on this host, made by the caller. */
  workDir: string;
  /** Default 8 s. */
  timeoutMs?: number;
  /** After close(): ends what the backend left attached below workDir and removes it. */
  removeWorkDir(workDir: string): void;
}

export function buildBackend<Options>(type: BackendType<Options>, options: Record<string, unknown>, o: BuildOptions): BackendUnderTest {
  const { logger, logs } = capturingLogger();
  const backend = type.create(type.optionsSchema.parse(options), { name: o.name, hostId: 'host-a', workDir: o.workDir, timeoutMs: o.timeoutMs ?? 8000, logger });
  return {
    backend,
    workDir: o.workDir,
    logs,
    async cleanup() {
      await backend.close().catch(() => undefined);
      o.removeWorkDir(o.workDir);
    },
  };
}

/** The NetvolError a promise rejects with (fails the test if it resolves or throws something else). */
export async function rejection(p: Promise<unknown>): Promise<NetvolError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NetvolError) return err;
    throw new Error(`expected a NetvolError, got ${String((err as Error)?.stack ?? err)}`);
  }
  throw new Error('expected the call to fail, but it succeeded');
}
