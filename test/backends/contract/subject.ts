/**
 * What the backend contract suite needs to know about one backend type: how to start its server,
 * how to build a backend over a folder of it, and how that folder looks from this host. Each
 * backend type describes itself once in subjects/<type>.ts; contract.test.ts lists them.
 */
import * as fs from 'node:fs';
import type { BackendUnderTest } from '../../harness/backend-under-test';

export { rejection } from '../../harness/backend-under-test';

/** A backend the suite made: it, its workDir, its logs and its cleanup. */
export type Made = BackendUnderTest;

export interface MakeOptions {
  /** The backend's root, as a folder below the subject's base (default "volumes"); created at open if missing. */
  folder?: string;
  timeoutMs?: number;
}

/** A filesystem of a few MiB the backend's root lies on, to see a full disk. */
export interface SmallDisk {
  /** This host's path of the small filesystem (the backend's root is its folder "volumes"). */
  dir: string;
  make(): Made;
  dispose(): Promise<void>;
}

export interface Subject {
  type: string;
  /** The name of every backend made here: their errors start with "backend <name>: ". */
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  make(o?: MakeOptions): Made;
  /** This host's path of a folder below the base, i.e. the server's disk. */
  onServer(...parts: string[]): string;
  /** usage() counts sizes ('apparent': the server reports no blocks) or allocated blocks. */
  usageCounts: 'apparent' | 'allocated';
  /** How far the free space a backend reports may be from statvfs on this host (servers report it a little late). */
  freeSlackBytes: number;
  /**
   * Removes the folder `folder` below the base and creates it again holding an empty folder `inside`,
   * the way another client of the server would (handles the backend holds go stale).
   */
  recreate(folder: string, inside: string): Promise<void>;
  /** What a backend logs when it noticed the re-created root, if it logs anything. */
  recreatedRootLog?: RegExp;
  /** A networked backend's server, for the cases about losing it (none for a folder of this host). */
  server?: {
    restart(): Promise<void>;
    /** Killed without a clean shutdown, then started again. */
    crashAndRestart(): Promise<void>;
    /** The server keeps its connections but stops answering, until resume(). */
    pause(): Promise<void>;
    resume(): Promise<void>;
    /** A backend of this type whose server does not run. */
    unreachable(timeoutMs: number): Promise<Made>;
  };
  smallDisk(): Promise<SmallDisk>;
  /** Cases only this backend type has (e.g. NFS exports), run after the shared ones. */
  extraCases?(get: () => Made): void;
}

/** Mount points at or below any of `dirs` (other processes on this machine mount elsewhere meanwhile). */
export function mountsUnder(...dirs: string[]): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((mp) => mp && dirs.some((d) => mp === d || mp.startsWith(`${d}/`)));
}
