/**
 * What a section gets to work with: progress output, notes, scratch folders, cleanup, and the
 * shared processes (one dockerd per run; netvol daemons per section). Everything a section starts
 * through the context is stopped and removed when the section ends, even when it fails.
 */
import fs from 'node:fs';
import { Dockerd, removeTree, startDockerd } from '../../test/harness/dockerd';
import { BenchDaemon, StartDaemonOptions, startBenchDaemon } from './daemon';
import { BenchContext } from './types';

/** Run-wide state shared by the sections' contexts. */
export class BenchRun {
  readonly notes: Array<{ section: string; text: string }> = [];
  private dockerdStarting: Promise<Dockerd> | undefined;

  constructor(
    readonly repoRoot: string,
    readonly quick: boolean,
  ) {}

  dockerd(log: (m: string) => void): Promise<Dockerd> {
    if (!this.dockerdStarting) {
      log('starting a private dockerd with busybox:local');
      this.dockerdStarting = startDockerd();
      // A failed start is retried by the next section that asks, not cached.
      this.dockerdStarting.catch(() => (this.dockerdStarting = undefined));
    }
    return this.dockerdStarting;
  }

  /** Stops the shared dockerd, after removing its containers and volumes. */
  async close(): Promise<void> {
    const starting = this.dockerdStarting;
    this.dockerdStarting = undefined;
    const d = await starting?.catch(() => undefined);
    if (d) {
      await d.removeAll();
      await d.stop();
    }
  }
}

export class SectionContext implements BenchContext {
  private readonly cleanups: Array<() => unknown> = [];

  constructor(
    private readonly runState: BenchRun,
    private readonly section: string,
  ) {}

  get repoRoot(): string {
    return this.runState.repoRoot;
  }

  get quick(): boolean {
    return this.runState.quick;
  }

  log(message: string): void {
    process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${this.section}: ${message}\n`);
  }

  note(text: string): void {
    this.runState.notes.push({ section: this.section, text });
  }

  workDir(prefix: string): string {
    const dir = fs.mkdtempSync(`/tmp/nvb-${prefix.replace(/[^a-z0-9]/gi, '')}-`);
    this.defer(() => removeTree(dir));
    return dir;
  }

  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  dockerd(): Promise<Dockerd> {
    return this.runState.dockerd((m) => this.log(m));
  }

  async startNetvol(opts?: StartDaemonOptions): Promise<BenchDaemon> {
    const d = await startBenchDaemon(this.repoRoot, opts);
    this.defer(() => d.stop());
    return d;
  }

  /** Runs every cleanup, last first; a failing cleanup is reported and does not stop the others. */
  async close(): Promise<void> {
    while (this.cleanups.length > 0) {
      const fn = this.cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        this.log(`cleanup failed: ${(err as Error).message}`);
      }
    }
  }
}
