import { z } from 'zod';

/**
 * Records keyed by what users and dockerd supply (volume names, mount IDs). A plain `{}` answers
 * `constructor`, `toString` or `__proto__` from Object.prototype; these records have no prototype,
 * so every key is only what was stored, and they still serialise as plain JSON objects.
 */
export type Keyed<T> = Record<string, T>;

/** A record with no prototype, optionally filled from entries. */
export function keyedRecord<T>(entries: Iterable<readonly [string, T]> = []): Keyed<T> {
  const out = Object.create(null) as Keyed<T>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}

/** The same record without a prototype (the record itself when it already has none). */
export function asKeyed<T>(record: Keyed<T>): Keyed<T> {
  return Object.getPrototypeOf(record) === null ? record : keyedRecord(Object.entries(record));
}

/**
 * A schema for a JSON object of any keys whose values match `value`, parsed into a record without a
 * prototype. (The library's own record schema builds a plain object, where a key `__proto__` is lost.)
 */
export function keyedSchema<T extends z.ZodType>(value: T): z.ZodType<Keyed<z.output<T>>> {
  return z
    .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'must be a map' })
    .transform((raw, ctx) => {
      const out = keyedRecord<z.output<T>>();
      for (const [k, v] of Object.entries(raw)) {
        const r = value.safeParse(v);
        if (!r.success) {
          for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: [k, ...i.path] });
          return z.NEVER;
        }
        out[k] = r.data;
      }
      return out;
    }) as unknown as z.ZodType<Keyed<z.output<T>>>;
}
