import { isNetvolError } from '../errors';
import type { Logger } from './logger';

/**
 * One operation's timing, emitted once where the operation runs (a volume's lock for Docker's
 * verbs and the admin operations that go through them; an admin operation's own code for backup,
 * clone…). Logs and metrics subscribe; neither is called by the code that emits.
 */
export interface OperationTiming {
  /** The verb or operation: create, mount, unmount, remove, remount, restore, backup… (a short fixed word, never free text). */
  operation: string;
  volume?: string;
  /** The backend it worked on; '' when it never got as far as knowing it (e.g. an unknown volume). */
  backend: string;
  durationSeconds: number;
  /** 'ok', or the error's code (NOT_FOUND, TIMEOUT, IN_USE…; INTERNAL for an unexpected error). */
  result: string;
}

export type TimingListener = (timing: OperationTiming) => void;

/** The observer: emit() hands each timing to every subscriber; a subscriber that throws is skipped, never the operation. */
export class OperationTimings {
  private readonly listeners = new Set<TimingListener>();

  /** Adds a listener; the returned function removes it. */
  subscribe(listener: TimingListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(timing: OperationTiming): void {
    for (const listener of this.listeners) {
      try {
        listener(timing);
      } catch {
        // a consumer's bug must never fail or slow the operation it observes
      }
    }
  }
}

/** The daemon's one observer of operation timings. */
export const operationTimings = new OperationTimings();

/** The result label of an outcome: 'ok' or the error's code. */
export function resultOf(err?: unknown): string {
  if (err === undefined) return 'ok';
  return isNetvolError(err) ? err.code : 'INTERNAL';
}

/** Runs `work` and emits its timing (operation, volume, backend, duration, result) when it settles. */
export async function timed<T>(operation: string, volume: string | undefined, backend: string, work: () => Promise<T>, observer: OperationTimings = operationTimings): Promise<T> {
  const started = process.hrtime.bigint();
  const done = (err?: unknown) => observer.emit({ operation, volume, backend, durationSeconds: Number(process.hrtime.bigint() - started) / 1e9, result: resultOf(err) });
  try {
    const value = await work();
    done();
    return value;
  } catch (err) {
    done(err);
    throw err;
  }
}

/** The log's subscription: one debug line per operation with its duration (errors are logged where they happen). */
export function logTimings(log: Logger, observer: OperationTimings = operationTimings): () => void {
  return observer.subscribe((t) =>
    log.debug('operation timing', { op: t.operation, volume: t.volume, backend: t.backend || undefined, durationMs: Math.round(t.durationSeconds * 1e6) / 1e3, result: t.result }),
  );
}
