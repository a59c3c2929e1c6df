/** A netvol daemon (the real dist/main.js) with an sftp backend on the harness's sshd. */
import { Netvol, startNetvol } from '../../harness/netvol';
import { sftpOptions, type Sshd } from '../../harness/sshd';

export interface SftpNetvolOptions {
  /** Merged over the sftp backend's options. */
  backend?: Record<string, unknown>;
  hostId?: string;
  /** Default 15. */
  timeoutSeconds?: number;
  /** Merged over the rest of the daemon's config (e.g. metrics). */
  extraConfig?: Record<string, unknown>;
}

export async function startSftpNetvol(sshd: Sshd, opts: SftpNetvolOptions = {}): Promise<Netvol> {
  return startNetvol({
    backends: {
      remote: { type: 'sftp', ...sftpOptions(sshd, opts.backend) },
    },
    extraConfig: { timeoutSeconds: opts.timeoutSeconds ?? 15, ...(opts.hostId ? { hostId: opts.hostId } : {}), ...opts.extraConfig },
  });
}

/** POSTs a protocol request and returns the JSON answer (Err included). */
export async function call(nv: Netvol, method: string, body: unknown): Promise<any> {
  const r = await nv.request(method, body, { timeoutMs: 90_000 });
  if (r.json === undefined) throw new Error(`${method}: not JSON (${r.status}): ${r.raw}`);
  return r.json;
}

/** Like call(), but fails with the daemon's Err and log tail when the answer carries an Err. */
export async function ok(nv: Netvol, method: string, body: unknown): Promise<any> {
  const json = await call(nv, method, body);
  if (json.Err) throw new Error(`${method} ${JSON.stringify(body)}: ${json.Err}\n--- netvol log ---\n${nv.logTail(20)}`);
  return json;
}
