import { Mutex } from 'async-mutex';
import { NetvolError } from '../errors';
import { Logger, OperationTimings, operationTimings, resultOf } from '../log';
import { abortion, RequestDeadline, runWithin } from '../system';

/** How long one request on a volume may run, and how long its work may take to stop once cut off. */
export interface RequestBudgets {
  /** Create and Mount (and a remount at start, which is a Mount's work): dockerd waits 120 s for them. */
  createMs: number;
  mountMs: number;
  /** Every other verb (and the work at start): dockerd waits 60 s. */
  otherMs: number;
  /** After the deadline, how long the answer waits for the stopped work to settle before it says TIMEOUT anyway. */
  settleMs: number;
  /** When a detach that failed after the last Unmount is tried again (see detach-retries.ts); the last delay repeats. */
  detachRetryMs?: readonly number[];
}

/**
 * Within dockerd's limits with room to spare: the budget, then the settle time, then the answer's
 * trip back. A single backend call (timeoutSeconds, at most 50 s) always fits in a budget.
 */
export const DEFAULT_BUDGETS: RequestBudgets = { createMs: 105_000, mountMs: 105_000, otherMs: 50_000, settleMs: 5_000 };

/** `detach`: a background retry of a detach an Unmount could not finish. */
export type Verb = 'create' | 'mount' | 'remove' | 'unmount' | 'restore' | 'remount' | 'resize' | 'detach';

/**
 * One mutex per volume name: operations on a volume are serialised, different volumes run in
 * parallel. The map itself needs no lock (JavaScript runs one callback at a time), so no global
 * lock is ever held across a slow await.
 *
 * Each run is one request with a deadline (RequestDeadline): its work gets the deadline's signal,
 * and every backend call bounded inside it (BackendPool.bounded) is tracked. At the deadline the signal aborts (subprocesses are
 * killed, connections reset) and the caller is answered — with the work's own result if it settles
 * within `settleMs`, else TIMEOUT. When the work ends early but left calls running that it stopped
 * waiting for, those are aborted too. Either way the lock is released only once everything the
 * request started has settled: a retried Mount never runs beside a timed-out one. A request still
 * waiting for the lock when its own deadline passes fails with TIMEOUT without running.
 */
export class VolumeLocks {
  private readonly locks = new Map<string, Mutex>();

  constructor(
    private readonly budgets: RequestBudgets = DEFAULT_BUDGETS,
    private readonly log?: Logger,
    /** Where each request's timing goes (operation = verb, its volume and backend, duration, result); null: nowhere. */
    private readonly observer: OperationTimings | null = operationTimings,
  ) {}

  /** The budget of one verb. */
  budgetOf(verb: Verb): number {
    return verb === 'create' ? this.budgets.createMs : verb === 'mount' || verb === 'remount' ? this.budgets.mountMs : this.budgets.otherMs;
  }

  /**
   * Runs one request on the volume (see the class) and emits its timing, waiting for the lock
   * included, when it is answered. `budgetMs` replaces the verb's budget: admin operations that
   * Docker does not wait for (a clone) may run longer.
   */
  async run<T>(name: string, work: (signal: AbortSignal) => Promise<T>, verb: Verb = 'restore', budgetMs = this.budgetOf(verb)): Promise<T> {
    const started = process.hrtime.bigint();
    let deadline: RequestDeadline | undefined;
    const observe = (err?: unknown) =>
      this.observer?.emit({ operation: verb, volume: name, backend: deadline?.backend ?? '', durationSeconds: Number(process.hrtime.bigint() - started) / 1e9, result: resultOf(err) });
    try {
      const value = await this.request(name, work, verb, budgetMs, (d) => (deadline = d));
      observe();
      return value;
    } catch (err) {
      observe(err);
      throw err;
    }
  }

  private async request<T>(name: string, work: (signal: AbortSignal) => Promise<T>, verb: Verb, budgetMs: number, made: (d: RequestDeadline) => void): Promise<T> {
    let lock = this.locks.get(name);
    if (!lock) {
      lock = new Mutex();
      this.locks.set(name, lock);
    }
    const deadline = new RequestDeadline(budgetMs, () => new NetvolError('TIMEOUT', `volume ${name}: ${verb} did not finish within ${seconds(budgetMs)} s; what it had started was stopped and undone where possible, try again`, { volume: name }));
    made(deadline);
    const release = await this.acquire(lock, name, verb, deadline);
    const running = runWithin(deadline, () => work(deadline.signal));
    // The lock is released once the request's work and everything it started have settled.
    void running
      .catch(() => undefined)
      .then(async () => {
        if (deadline.running > 0) {
          deadline.abort(new NetvolError('TIMEOUT', `volume ${name}: ${verb} was answered; work it left running was stopped`, { volume: name }));
          await this.settle(deadline, name, verb);
        }
      })
      .finally(() => {
        deadline.finish();
        release();
      });
    const aborted = abortion(deadline.signal);
    try {
      return await Promise.race([running, aborted.promise]);
    } catch (err) {
      if (!deadline.expired) throw err; // its own error, not the deadline's
      // Out of time: give the stopped work a moment to settle, so the answer says how it ended.
      const outcome = await Promise.race([
        running.then((value) => ({ value }), (error: unknown) => ({ error })),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), this.budgets.settleMs).unref()),
      ]);
      if (outcome && 'value' in outcome) return outcome.value;
      if (!outcome) this.log?.warn('the work of a timed-out request has not stopped yet; the volume stays locked until it does', { volume: name, op: verb });
      throw deadline.signal.reason as NetvolError;
    } finally {
      aborted.dispose();
    }
  }

  /** Waits for the lock until the request's deadline; a request that gets it too late gives it back at once. */
  private async acquire(lock: Mutex, name: string, verb: Verb, deadline: RequestDeadline): Promise<() => void> {
    let gaveUp = false;
    const acquiring = lock.acquire();
    acquiring.then((release) => gaveUp && release(), () => undefined);
    const aborted = abortion(deadline.signal);
    try {
      return await Promise.race([acquiring, aborted.promise]);
    } catch {
      gaveUp = true;
      deadline.dispose();
      throw new NetvolError('TIMEOUT', `volume ${name}: ${verb} waited ${seconds(deadline.budgetMs)} s for an earlier request on this volume that is still finishing; try again`, { volume: name });
    } finally {
      aborted.dispose();
    }
  }

  private async settle(deadline: RequestDeadline, name: string, verb: Verb): Promise<void> {
    const slow = setTimeout(() => this.log?.warn('work cut off by a request deadline is still running; the volume stays locked until it stops', { volume: name, op: verb }), this.budgets.settleMs);
    slow.unref();
    try {
      await deadline.settled();
    } finally {
      clearTimeout(slow);
    }
  }
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}
