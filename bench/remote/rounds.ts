/** Interleaved repetitions of timed operations (e.g. first Mount against a plain sshfs mount). */
import { BenchContext } from '../lib/types';
import { rotated } from './proc';

export interface TimedVariant {
  key: string;
  label: string;
  /** One repetition; resolves with the milliseconds of its timed part (set-up and tear-down excluded). */
  once(i: number): Promise<number>;
}

export async function measureRounds(ctx: BenchContext, what: string, variants: readonly TimedVariant[], runs: number, warmups = 1): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(variants.map((v) => [v.key, []]));
  let n = 0;
  for (let round = -warmups; round < runs; round++) {
    for (const v of rotated(variants, round + warmups)) {
      const ms = await v.once(n++);
      if (round >= 0) out.get(v.key)!.push(ms);
    }
    if (round >= 0 && ((round + 1) % 5 === 0 || round === runs - 1)) ctx.log(`${what}: ${round + 1}/${runs}`);
  }
  return out;
}
