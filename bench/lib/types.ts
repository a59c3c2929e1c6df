/**
 * The contract between the runner and a benchmark section. A section is one file in
 * bench/sections/ that exports `section`; the runner finds it there, runs it, and turns its rows
 * into the table. Sections measure; only the runner judges (PASS/MISS) and prints.
 */
import type { Dockerd } from '../../test/harness/dockerd';
import type { BenchDaemon, StartDaemonOptions } from './daemon';

/** A measured figure. `unit` is printed after the value; `digits` decimals (default 2). */
export interface Figure {
  value: number;
  unit: string;
  digits?: number;
  /** What was measured, when the metric name does not say it (e.g. "raw disk"). */
  label?: string;
}

/**
 * A target on the netvol figure (in its unit) or on the ratio netvol/baseline.
 * `op` reads left to right: `{ on: 'ratio', op: '>=', value: 0.9 }` is "ratio ≥ 0.90".
 */
export interface Target {
  on: 'netvol' | 'ratio';
  op: '<' | '<=' | '>' | '>=';
  value: number;
}

export interface MeasuredRow {
  metric: string;
  netvol: Figure;
  /** What netvol is compared against, measured in the same run (interleaved). */
  baseline?: Figure;
  /** Absent: the row is information only and gets no PASS/MISS. */
  target?: Target;
}

/** A part of a section that could not be measured: the table shows ERROR and the run exits 1. */
export interface FailedRow {
  metric: string;
  error: string;
}

export type Row = MeasuredRow | FailedRow;

export function isFailed(row: Row): row is FailedRow {
  return 'error' in row;
}

export interface BenchContext {
  /** The repository root (dist/main.js lives below it). */
  readonly repoRoot: string;
  /** Fewer repetitions, for trying the bench out; figures are not for committing. */
  readonly quick: boolean;
  /** A progress line on stderr, prefixed with the section's name. */
  log(message: string): void;
  /** A finding printed under the table (one line of markdown). */
  note(text: string): void;
  /** A new empty folder for this section; removed (after unmounting what is below it) when the section ends. */
  workDir(prefix: string): string;
  /** Runs `fn` when the section ends, success or not; last registered runs first. */
  defer(fn: () => unknown): void;
  /** The run's private dockerd (busybox:local imported), started on first use and shared by sections. */
  dockerd(): Promise<Dockerd>;
  /** Starts a netvol daemon from dist/main.js under a unique plugin name; stopped when the section ends. */
  startNetvol(opts?: StartDaemonOptions): Promise<BenchDaemon>;
}

export interface Section {
  /** Short, lowercase: what `--only` takes (e.g. "core", "sftp", "nfs"). */
  name: string;
  /** One line for `--list`. */
  description: string;
  /** Runs only when named in `--only` (investigations too slow or too narrow for every run). */
  optIn?: boolean;
  run(ctx: BenchContext): Promise<Row[]>;
}
