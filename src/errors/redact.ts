/**
 * Secret redaction shared by the logger and by error text. Secrets are registered once (from the
 * daemon config) and any string containing them is scrubbed; keys that look secret are masked
 * whatever their value.
 */
const SECRET_KEY = /pass(word|phrase)?|secret|private_?key|privatekey|token|credential/i;
const MASK = '[redacted]';
const known = new Set<string>();

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) known.add(value);
}

export function redactString(text: string): string {
  let out = text;
  for (const secret of known) out = out.split(secret).join(MASK);
  return out;
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Deep copy of `value` with secret-looking keys masked and known secrets removed from strings. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return redactString(value.message);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) && v !== undefined && v !== '' ? MASK : redact(v, depth + 1);
  }
  return out;
}
