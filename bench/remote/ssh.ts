/**
 * The sftp section's baselines on the harness's sshd: a plain sshfs mount with sshfs's default
 * options (only what authentication and the host-key check need), and the raw SSH stream
 * (`ssh host 'cat > /dev/null'`), the most any SSH-based data path can reach on this link.
 */
import fs from 'node:fs';
import { run } from '../../test/harness/dockerd';
import type { Sshd } from '../../test/harness/sshd';
import { elapsedMs } from '../lib/stats';
import { isMountpoint, q, timedShell, unmountFuse } from './proc';

/** The cipher netvol's sshfs asks for first (src/backends/sftp/sshfs.ts). */
export const NETVOL_CIPHER = 'aes128-gcm@openssh.com';

/** ssh's options for key login against the harness's known_hosts; no ssh_config of the machine applies. */
function authOptions(sshd: Sshd): string[] {
  return [
    `IdentityFile=${sshd.userKeyFile}`,
    'IdentitiesOnly=yes',
    `UserKnownHostsFile=${sshd.knownHostsFile}`,
    'GlobalKnownHostsFile=/dev/null',
    'StrictHostKeyChecking=yes',
    'BatchMode=yes',
  ];
}

/** argv for `ssh` (without the remote command); `cipher` undefined: ssh's default negotiation. */
export function sshArgv(sshd: Sshd, cipher?: string): string[] {
  const o = [...authOptions(sshd), ...(cipher ? [`Ciphers=${cipher}`, 'Compression=no'] : [])];
  return ['ssh', '-F', '/dev/null', '-p', String(sshd.port), ...o.flatMap((x) => ['-o', x]), `root@${sshd.host}`];
}

/** The cipher ssh negotiates with these options, from its debug output ("kex: client->server cipher: …"). */
export async function negotiatedCipher(sshd: Sshd, cipher?: string): Promise<string> {
  const [file, ...args] = sshArgv(sshd, cipher);
  const r = await run(file, ['-v', ...args, 'true'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`ssh to the bench sshd failed (${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return /kex: client->server cipher: (\S+)/.exec(r.stderr)?.[1] ?? 'unknown';
}

/** Nanoseconds printed by `date +%s%N` lines, first and last. */
function span(stdout: string): number {
  const stamps = stdout.split(/\s+/).filter((x) => /^\d{16,}$/.test(x)).map(Number);
  if (stamps.length < 2) throw new Error(`expected two timestamps from the raw stream, got: ${stdout.slice(0, 200)}`);
  return (stamps[stamps.length - 1] - stamps[0]) / 1e6;
}

/**
 * MiB/s of `mib` MiB of zeros pushed through `ssh host 'cat > /dev/null'`. Timed from when the
 * remote command starts to when it has consumed the end of the stream (the server stamps both, on
 * this machine's clock): the connection's handshake is not the link's throughput.
 */
export async function rawStreamWrite(sshd: Sshd, mib: number, cipher?: string): Promise<number> {
  const ssh = sshArgv(sshd, cipher).map(q).join(' ');
  const { stdout } = await timedShell(`dd if=/dev/zero bs=1M count=${mib} status=none | ${ssh} 'date +%s%N; cat > /dev/null; date +%s%N'`);
  return mib / (span(stdout) / 1000);
}

/** MiB/s of `mib` MiB of zeros pulled through `ssh host 'head -c N /dev/zero' > /dev/null`, from the remote command's start to ssh's exit. */
export async function rawStreamRead(sshd: Sshd, mib: number, cipher?: string): Promise<number> {
  const ssh = sshArgv(sshd, cipher).map(q).join(' ');
  const { stdout } = await timedShell(`${ssh} 'date +%s%N >&2; head -c ${mib * 1024 * 1024} /dev/zero' 2>&1 > /dev/null; date +%s%N`);
  return mib / (span(stdout) / 1000);
}

/**
 * Mounts `remote` with sshfs's defaults (no cipher, max_read/max_write or cache options of netvol's);
 * resolves with the milliseconds until sshfs has mounted and daemonized.
 */
export async function mountPlainSshfs(sshd: Sshd, remote: string, mountpoint: string): Promise<number> {
  fs.mkdirSync(mountpoint, { recursive: true });
  const t = process.hrtime.bigint();
  const r = await run('sshfs', ['-F', '/dev/null', '-p', String(sshd.port), `root@${sshd.host}:${remote}`, mountpoint, '-o', authOptions(sshd).join(',')], {
    timeoutMs: 60_000,
  });
  const ms = elapsedMs(t);
  if (r.code !== 0 || !isMountpoint(mountpoint)) throw new Error(`plain sshfs mount failed (${r.code}): ${r.stderr.trim()}`);
  return ms;
}

export const unmountPlainSshfs = unmountFuse;
