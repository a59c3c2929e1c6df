import { AsyncLocalStorage } from 'node:async_hooks';
import { NetvolError } from '../errors';

/**
 * The time limit of one request (a Docker verb on one volume): an AbortSignal that aborts with a
 * TIMEOUT NetvolError when the budget is spent, and the work started for the request that has not
 * settled yet. Work a caller stopped waiting for (a call cut off by withinRequest) stays counted
 * here, so whoever guards the request (the volume's lock) can wait until it has really stopped.
 */
export class RequestDeadline {
  private readonly controller = new AbortController();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly budgetMs: number,
    /** The error the signal aborts with when the budget is spent. */
    expired: () => NetvolError,
  ) {
    this.timer = setTimeout(() => {
      this.expired = true;
      this.abort(expired());
    }, budgetMs);
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Stops the request's work now (the request is over, or out of time); the signal's reason is `why`. */
  abort(why: NetvolError): void {
    clearTimeout(this.timer);
    if (!this.controller.signal.aborted) this.controller.abort(why);
  }

  /** Counts `work` as the request's until it settles. */
  track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const done = () => this.pending.delete(work);
    work.then(done, done);
    return work;
  }

  /** How many tracked pieces of work are still running. */
  get running(): number {
    return this.pending.size;
  }

  /** Resolves once every tracked piece of work has settled (including work tracked meanwhile). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Clears the timer; the signal stays as it is. */
  dispose(): void {
    clearTimeout(this.timer);
  }

  /** The request is over (its lock released): work that still finds this deadline in its context (a timer it set) is no longer its. */
  finish(): void {
    this.dispose();
    this.finished = true;
  }

  finished = false;
  /** The backend the request works on, once it is known (for its timing: see noteRequestBackend). */
  backend?: string;
  /** The budget ran out (rather than the request being stopped because it was over). */
  expired = false;
}

const currentRequest = new AsyncLocalStorage<RequestDeadline>();

/** Runs `work` as part of `deadline`'s request: withinRequest calls inside it are tracked by it and end at its signal. */
export function runWithin<T>(deadline: RequestDeadline, work: () => Promise<T>): Promise<T> {
  return currentRequest.run(deadline, work);
}

/** The deadline of the request the caller is working for, if any (and if that request is not over). */
export function requestDeadline(): RequestDeadline | undefined {
  const deadline = currentRequest.getStore();
  return deadline && !deadline.finished ? deadline : undefined;
}

/** Tells the current request (if any) which backend it works on; the first one named stays. */
export function noteRequestBackend(backend: string): void {
  const deadline = requestDeadline();
  if (deadline && deadline.backend === undefined) deadline.backend = backend;
}

/** Runs `work` as no request's: for shared work a request only starts (opening a backend, a heartbeat loop). */
export function outsideRequest<T>(work: () => T): T {
  return currentRequest.exit(work);
}

/** Rejects with the signal's reason as soon as it aborts; `dispose` removes the listener. */
export function abortion(signal: AbortSignal | undefined): { promise: Promise<never>; dispose: () => void } {
  if (!signal) return { promise: new Promise<never>(() => undefined), dispose: () => undefined };
  let listener: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    listener = () => reject(signal.reason);
    signal.addEventListener('abort', listener, { once: true });
  });
  promise.catch(() => undefined);
  return { promise, dispose: () => listener && signal.removeEventListener('abort', listener) };
}

/** Races `work` against a timer; the caller's text says what was being waited for. */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string, volume?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NetvolError('TIMEOUT', `${what} did not finish within ${Math.round(ms / 1000)} s`, { volume })), ms);
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * withTimeout for one call of a request (runWithin): `work` also ends at the request's deadline,
 * and stays tracked by the request after this stops waiting for it, so the request is not over
 * until it has settled. Outside a request it is plain withTimeout.
 */
export async function withinRequest<T>(work: Promise<T>, ms: number, what: string, volume?: string): Promise<T> {
  const request = requestDeadline();
  if (!request) return withTimeout(work, ms, what, volume);
  request.track(work);
  const aborted = abortion(request.signal);
  try {
    return await Promise.race([withTimeout(work, ms, what, volume), aborted.promise]);
  } finally {
    aborted.dispose();
  }
}
