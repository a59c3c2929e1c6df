import { readFileSync } from 'node:fs';
import { z } from 'zod';

const absolute = z.string().startsWith('/', 'must be an absolute path');

/**
 * The `sftp` backend block of the daemon config (without `type`). Credentials live here or in the
 * files named here, never in volume options. The host key is always checked unless the operator
 * explicitly opts out.
 */
export const sftpOptionsSchema = z
  .strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().min(1),
    /** Private key file (OpenSSH or PEM format, unencrypted). */
    privateKeyFile: absolute.optional(),
    password: z.string().min(1).optional(),
    /** A file holding the password (its first line). */
    passwordFile: absolute.optional(),
    /** known_hosts file that lists this server (plain or hashed host names, `[host]:port` for other ports). */
    knownHostsFile: absolute.optional(),
    /** The server's host key fingerprint as `ssh-keygen -l` prints it: "SHA256:…". */
    hostKeyFingerprint: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'must look like "SHA256:" followed by 43 base64 characters, as ssh-keygen -l -E sha256 prints it')
      .optional(),
    insecureSkipHostKeyCheck: z.boolean().default(false),
    /** Absolute folder on the server holding one sub-folder per volume. Created at start if missing. */
    path: absolute,
    /** Extra `-o` options for sshfs (e.g. ["max_conns=2"]); they come after netvol's own options. */
    sshfsOptions: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(=[^,\s]*)?$/, 'must be one option such as name or name=value')).default([]),
  })
  .refine((o) => [o.privateKeyFile, o.password, o.passwordFile].filter((v) => v !== undefined).length === 1, {
    message: 'set exactly one of privateKeyFile, password, passwordFile',
  })
  .refine((o) => o.insecureSkipHostKeyCheck || o.knownHostsFile !== undefined || o.hostKeyFingerprint !== undefined, {
    message:
      'the server host key must be verified: set knownHostsFile or hostKeyFingerprint ("SHA256:…", from ssh-keygen -l -E sha256 -f the server key), or insecureSkipHostKeyCheck: true to connect to any server that answers',
  })
  .refine((o) => !(o.knownHostsFile !== undefined && o.hostKeyFingerprint !== undefined), {
    message: 'set knownHostsFile or hostKeyFingerprint, not both',
  });

export type SftpOptions = z.infer<typeof sftpOptionsSchema>;

/** The secrets of a backend block: the password, or the first line of its password file. */
export function sftpSecrets(options: SftpOptions): Array<string | undefined> {
  const out: Array<string | undefined> = [options.password];
  if (options.passwordFile) {
    try {
      out.push(firstLine(readFileSync(options.passwordFile, 'utf8')));
    } catch {
      // Unreadable now: open() reports it, and registers the password once it can read it.
    }
  }
  return out;
}

export function firstLine(text: string): string {
  return text.split(/\r?\n/)[0] ?? '';
}
