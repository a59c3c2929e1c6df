import type { z } from 'zod';

/**
 * Our wording for validation failures, so that no error shows the validation library's own text
 * ("Invalid option: expected one of ..."). `validationMessages()` is a per-parse error map: a
 * schema's own message (given where the schema is written) still wins; every default message is
 * replaced by a short clause that reads after a key, e.g. `scope: must be one of auto, local`.
 */

type RawIssue = z.core.$ZodRawIssue;

const TYPE_NAMES: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  boolean: 'true or false',
  object: 'a map of settings',
  record: 'a map',
  map: 'a map',
  array: 'a list',
  tuple: 'a list',
  set: 'a list',
  date: 'a date',
  null: 'null',
  undefined: 'nothing',
  symbol: 'a symbol',
  function: 'a function',
  nan: 'not a number',
};

/** What a value is, in words ("text", "a list"), for "must be X, not Y". */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'text';
    case 'number':
      return Number.isInteger(value) ? 'a number' : 'a fractional number';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/** How many characters of a user's value an error quotes before cutting it short. */
export const QUOTE_LIMIT = 60;

/**
 * A value the user wrote, as an error quotes it: text in double quotes, cut after QUOTE_LIMIT
 * characters with "…" and its full length (an Err is one readable line, however long the value);
 * anything that is not text is described in words ("an object", "a number"), never printed.
 */
export function quoteUserValue(value: unknown): string {
  if (typeof value !== 'string') return `(${describeValue(value)})`;
  if (value.length <= QUOTE_LIMIT) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, QUOTE_LIMIT)).slice(0, -1)}…" (${value.length} characters)`;
}

function listValues(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? (v === '' ? '""' : v) : JSON.stringify(v) ?? String(v))).join(', ');
}

function quoteKeys(keys: readonly string[]): string {
  return keys.map((k) => `"${k}"`).join(', ');
}

/** The keys an object schema accepts, in the order they are written. */
function shapeKeys(inst: unknown): string[] {
  const def = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def;
  return def?.shape ? Object.keys(def.shape) : [];
}

function bound(issue: { origin?: string; inclusive?: boolean }, value: unknown, atLeast: boolean): string {
  const n = typeof value === 'bigint' ? value.toString() : String(value);
  switch (issue.origin) {
    case 'string':
      if (atLeast && Number(n) === 1) return 'must not be empty';
      return `must be ${atLeast ? 'at least' : 'at most'} ${n} characters long`;
    case 'array':
    case 'set':
    case 'file':
      if (atLeast && Number(n) === 1) return 'must not be empty';
      return `must have ${atLeast ? 'at least' : 'at most'} ${n} entries`;
    default:
      if (issue.inclusive === false) return `must be ${atLeast ? 'more' : 'less'} than ${n}`;
      return `must be ${atLeast ? 'at least' : 'at most'} ${n}`;
  }
}

/** The clause for one issue whose schema gave no message of its own. */
function clause(issue: RawIssue, alsoAccepted: readonly string[]): string {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'is required';
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      if (issue.expected === 'int' && typeof issue.input === 'number') return 'must be a whole number';
      return `must be ${expected}, not ${describeValue(issue.input)}`;
    }
    case 'invalid_value':
      return issue.values.length === 1 ? `must be ${listValues(issue.values)}` : `must be one of ${listValues(issue.values)}`;
    case 'too_small':
      return bound(issue, issue.minimum, true);
    case 'too_big':
      return bound(issue, issue.maximum, false);
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    case 'invalid_format': {
      const f = issue as { format: string; prefix?: string; suffix?: string; includes?: string; pattern?: string };
      if (f.format === 'starts_with') return `must start with "${f.prefix}"`;
      if (f.format === 'ends_with') return `must end with "${f.suffix}"`;
      if (f.format === 'includes') return `must contain "${f.includes}"`;
      if (f.format === 'regex') return `must match ${f.pattern}`;
      return `must be a valid ${f.format}`;
    }
    case 'unrecognized_keys': {
      const accepted = [...alsoAccepted, ...shapeKeys(issue.inst)];
      const which = `${issue.keys.length === 1 ? 'unknown key' : 'unknown keys'} ${quoteKeys(issue.keys)}`;
      return accepted.length > 0 ? `${which}; accepted keys are ${accepted.join(', ')}` : which;
    }
    case 'invalid_key': {
      const why = issue.issues.map((i) => i.message).join('; ');
      return `invalid name ${quoteUserValue(issue.input)}${why ? `: ${why}` : ''}`;
    }
    case 'invalid_element':
      return `invalid entry ${quoteUserValue(typeof issue.key === 'number' ? String(issue.key) : issue.key)}: ${issue.issues.map((i) => i.message).join('; ')}`;
    case 'invalid_union': {
      const alternatives = issue.errors;
      if (alternatives.length > 0 && alternatives.every((a) => a.length === 1 && a[0].code === 'invalid_value')) {
        const values = alternatives.flatMap((a) => (a[0] as { values: unknown[] }).values);
        return `must be one of ${listValues(values)}`;
      }
      // The alternative whose type matched says best what is wrong.
      const matched = alternatives.find((a) => a.length > 0 && a.every((i) => i.code !== 'invalid_type' && i.code !== 'invalid_value'));
      if (matched) return matched[0].message;
      const types = alternatives.flatMap((a) => a.filter((i) => i.code === 'invalid_type').map((i) => TYPE_NAMES[(i as { expected: string }).expected] ?? ''));
      const named = [...new Set(types.filter(Boolean))];
      return named.length > 0 ? `must be ${named.join(' or ')}, not ${describeValue(issue.input)}` : 'is not a valid value';
    }
    default:
      return 'is not a valid value';
  }
}

/**
 * A per-parse error map (`schema.safeParse(x, { error: validationMessages() })`). `alsoAccepted`
 * lists keys that a caller took out of the object before parsing it, so that an unknown key's
 * message names every key the user may write there.
 */
export function validationMessages(alsoAccepted: readonly string[] = []): z.core.$ZodErrorMap {
  return (issue) => clause(issue, alsoAccepted);
}

/**
 * All issues of a failed parse as one text: `where: clause; where: clause`. `where` is `prefix`
 * and the issue's path joined by dots; an issue about the whole document reads `<subject> <clause>`
 * (or just its clause when it names keys itself).
 */
export function issuesText(error: z.ZodError, prefix = '', subject = 'the value'): string {
  return error.issues
    .map((i) => {
      const where = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
      if (where) return `${where}: ${i.message}`;
      return /^(must|is) /.test(i.message) ? `${subject} ${i.message}` : i.message;
    })
    .join('; ');
}
