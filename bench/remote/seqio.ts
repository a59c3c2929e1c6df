/**
 * Sequential write and cold read of N variants (a netvol volume, a plain client, the raw link…)
 * in interleaved rounds, so that load drift on a shared machine falls on every variant alike.
 * Each variant writes something fresh, reads it back after the page cache is dropped, and discards it.
 */
import fs from 'node:fs';
import { ddReadCold, ddWrite } from '../lib/io';
import { median } from '../lib/stats';
import { BenchContext, Figure } from '../lib/types';
import { fmtList, mustDropCaches, rotated } from './proc';

export interface SeqVariant {
  key: string;
  /** What the table calls it, e.g. "plain sshfs". */
  label: string;
  /** Writes `mib` MiB fresh (run `i`); resolves with MiB/s. */
  write(i: number, mib: number): Promise<number>;
  /** Reads what write(i) wrote, cold; resolves with MiB/s. Absent: a write-only variant. */
  read?(i: number, mib: number): Promise<number>;
  /** Removes what write(i) wrote. */
  discard?(i: number): Promise<void>;
}

export interface SeqSamples {
  write: number[];
  read: number[];
}

export interface SeqPlan {
  mib: number;
  runs: number;
  /** Unrecorded rounds first (the first write of a part is often the slowest whichever side goes first). */
  warmups: number;
}

export async function measureSeq(ctx: BenchContext, what: string, variants: readonly SeqVariant[], plan: SeqPlan): Promise<Map<string, SeqSamples>> {
  const out = new Map<string, SeqSamples>(variants.map((v) => [v.key, { write: [], read: [] }]));
  let n = 0;
  for (let round = -plan.warmups; round < plan.runs; round++) {
    const recording = round >= 0;
    for (const v of rotated(variants, round + plan.warmups)) {
      const i = n++;
      ctx.log(`${what}: ${recording ? `run ${round + 1}/${plan.runs}` : 'warm-up'}, ${v.label}`);
      try {
        // Every write starts from an empty page cache: what the previous variant left cached (the
        // null FUSE file's pages, a baseline's file that the server still holds open) made the
        // write after it run at about half speed in most rounds, whichever variant that was. Each
        // write warms its memory itself, right before its clock starts (ddWrite, nfs-cp's write).
        mustDropCaches(false);
        const w = await v.write(i, plan.mib);
        const r = v.read ? await v.read(i, plan.mib) : undefined;
        if (recording) {
          out.get(v.key)!.write.push(w);
          if (r !== undefined) out.get(v.key)!.read.push(r);
        }
      } finally {
        await v.discard?.(i);
      }
    }
  }
  return out;
}

/** A variant that writes a file with dd (conv=fsync) in `dir` and reads it back cold with dd. */
export function ddVariant(key: string, label: string, dir: () => string): SeqVariant {
  const file = (i: number) => `${dir()}/seq-${i}.bin`;
  return {
    key,
    label,
    write: (i, mib) => ddWrite(file(i), mib),
    async read(i) {
      const r = await ddReadCold(file(i));
      if (r === undefined) throw new Error('cannot drop the page cache: cold reads cannot be measured here');
      return r;
    },
    async discard(i) {
      fs.rmSync(file(i), { force: true });
    },
  };
}

export function mibps(samples: readonly number[], label: string): Figure {
  return { value: median(samples), unit: 'MiB/s', digits: 0, label };
}

/** "label w1, w2, w3" for notes: every run's figure, so a median of 3 can be judged for spread. */
export function perRun(samples: Map<string, SeqSamples>, variants: readonly SeqVariant[], kind: keyof SeqSamples): string {
  return variants
    .filter((v) => samples.get(v.key)![kind].length > 0)
    .map((v) => `${v.label} ${fmtList(samples.get(v.key)![kind])}`)
    .join('; ');
}

export function sizeText(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}
