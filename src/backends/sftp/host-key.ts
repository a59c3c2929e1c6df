import { createHash, createHmac } from 'node:crypto';

/** "SHA256:…" of a raw SSH public key blob, as ssh-keygen -l -E sha256 prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob ("ssh-ed25519", "ecdsa-sha2-nistp256"…). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** A known_hosts line for `host:port` that OpenSSH (sshfs's ssh) accepts. */
export function knownHostsLine(host: string, port: number, blob: Buffer): string {
  return `${hostPattern(host, port)} ${keyType(blob)} ${blob.toString('base64')}\n`;
}

function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export interface KnownKey {
  type: string;
  blob: Buffer;
  revoked: boolean;
}

/** Glob of known_hosts patterns: `*` and `?`. */
function globMatch(pattern: string, text: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|\\[\]]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(text);
}

function matchesHost(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = negated ? raw.slice(1) : raw;
    if (globMatch(pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/**
 * The keys a known_hosts text lists for `host:port` (OpenSSH syntax: comma-separated patterns with
 * `*`/`?` and `!`, `[host]:port`, hashed `|1|salt|hash` names, `@revoked` markers;
 * `@cert-authority` lines are ignored).
 */
export function knownKeysFor(text: string, host: string, port: number): KnownKey[] {
  const name = hostPattern(host, port);
  const out: KnownKey[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0].startsWith('@')) marker = fields.shift();
    if (marker === '@cert-authority' || fields.length < 3) continue;
    const [hosts, type, key] = fields;
    if (!matchesHost(hosts, name)) continue;
    out.push({ type, blob: Buffer.from(key, 'base64'), revoked: marker === '@revoked' });
  }
  return out;
}

/** Host key algorithms ssh2 may negotiate for keys of these types (RSA keys sign with SHA-2 too). */
export function algorithmsFor(types: string[]): string[] {
  const out = new Set<string>();
  for (const t of types) {
    if (t === 'ssh-rsa') ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'].forEach((a) => out.add(a));
    else out.add(t);
  }
  return [...out];
}
