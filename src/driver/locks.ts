import { Mutex } from 'async-mutex';

/**
 * One mutex per volume name: operations on a volume are serialised, different volumes run in
 * parallel. The map itself needs no lock (JavaScript runs one callback at a time), so no global
 * lock is ever held across a slow await.
 */
export class VolumeLocks {
  private readonly locks = new Map<string, Mutex>();

  run<T>(name: string, work: () => Promise<T>): Promise<T> {
    let lock = this.locks.get(name);
    if (!lock) {
      lock = new Mutex();
      this.locks.set(name, lock);
    }
    return lock.runExclusive(work);
  }
}
