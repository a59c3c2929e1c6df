/**
 * kill -9 cycles through a real dockerd: each cycle `docker run`s a container that writes a file
 * into a netvol volume and prints its md5, and SIGKILLs the daemon at a random moment of it. Once
 * the daemon is back and the container has ended, dockerd holds no mount of the volume, so the
 * daemon must hold none either; files whose container succeeded must keep their md5.
 */
import fc from 'fast-check';
import { BUSYBOX_IMAGE, sleep, startDockerd, type Dockerd } from '../../harness/dockerd';
import { startNetvol, type Netvol } from '../../harness/netvol';
import { helperPids, orphanProblems } from './checks';
import { foldersOf } from './fuzz';
import { MountModel } from './model';
import { emptyResult, interruption, type PhaseResult, type Progress } from './phases';

const VOLUMES: Array<{ name: string; opts: string[] }> = [
  { name: 'dk-d0', opts: [] },
  { name: 'dk-i0', opts: ['-o', 'size=16M'] },
];

/** How long the restarted daemon may take to release, after asking dockerd, the mount IDs of containers that ended while it was dead. */
const RECONCILE_WAIT_MS = 20_000;

export async function dockerdPhase(o: { cycles: number; seed: number; progress?: Progress }): Promise<PhaseResult> {
  const result = emptyResult('kill -9 under docker run (local)');
  const started = Date.now();
  let nv: Netvol | undefined;
  let d: Dockerd | undefined;
  const files = new Map<string, Map<string, string>>();
  try {
    // The daemon knows its dockerd, as in production: after a restart it asks which running
    // containers use its volumes and releases the mount IDs of containers that ended meanwhile.
    d = await startDockerd();
    nv = await startNetvol({ extraConfig: { timeoutSeconds: 10, logLevel: 'info', dockerHost: d.host } });
    for (const v of VOLUMES) {
      await d.dockerOk(['volume', 'create', '-d', nv.pluginName, ...v.opts, v.name]);
      files.set(v.name, new Map());
    }
    for (let cycle = 0; cycle < o.cycles && !interruption.requested; cycle++) {
      const [plan] = fc.sample(fc.record({ volume: fc.nat({ max: VOLUMES.length - 1 }), killMs: fc.integer({ min: 0, max: 2500 }) }), { numRuns: 1, seed: o.seed + cycle });
      const name = VOLUMES[plan.volume].name;
      const file = `c${cycle}`;
      const run = d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', `dd if=/dev/urandom of=/data/${file} bs=4k count=16 2>/dev/null && sync && md5sum /data/${file}`], { timeoutMs: 120_000 });
      result.requests++;
      await sleep(plan.killMs);
      await nv.kill9();
      result.faults++;
      const r = await run;
      await nv.restart();
      if (r.code === 0) {
        const md5 = r.stdout.trim().split(/\s+/)[0];
        files.get(name)!.set(file, md5);
      }
      // No container runs now: dockerd holds no mount, and neither may the daemon once it has
      // reconciled with dockerd (a container that ended while it was dead got its Unmount refused).
      for (const v of VOLUMES) {
        let ids: string[] = [];
        let err: string | undefined;
        for (const until = Date.now() + RECONCILE_WAIT_MS; ; await sleep(250)) {
          const g = await nv.request('VolumeDriver.Get', { Name: v.name });
          err = g.json?.Err || undefined;
          ids = g.json?.Volume?.Status?.mounts ?? [];
          if (err || ids.length === 0 || Date.now() > until) break;
        }
        if (err) result.problems.push(`cycle ${cycle}: Get ${v.name} failed: ${err}`);
        else if (ids.length > 0) {
          result.orphans++;
          result.problems.push(`cycle ${cycle}: no container runs, but ${RECONCILE_WAIT_MS / 1000} s after its restart the daemon still holds mount IDs ${ids.join(', ')} of ${v.name} (killed ${plan.killMs} ms into docker run, which ${r.code === 0 ? 'succeeded' : `failed: ${r.stderr.trim().split('\n').pop()}`})`);
          // Let the next cycles start clean.
          for (const id of ids) await nv.request('VolumeDriver.Unmount', { Name: v.name, ID: id });
        }
      }
      const f = foldersOf(nv);
      const left = [...orphanProblems(f, new MountModel()), ...helperPids(f).map((p) => `helper process ${p}`)];
      result.orphans += left.length;
      result.problems.push(...left.map((p) => `cycle ${cycle}: ${p}`));
      result.cycles++;
      if (o.progress && (cycle + 1) % 10 === 0) o.progress(`${result.phase}: ${cycle + 1} cycles`);
    }
    // Every file of a container that succeeded, read back by a new container.
    for (const [name, want] of files) {
      if (want.size === 0) continue;
      const r = await d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'cd /data && md5sum c*'], { timeoutMs: 120_000 });
      result.requests++;
      const got = new Map(r.stdout.trim().split('\n').filter(Boolean).map((l) => { const [md5, f] = l.trim().split(/\s+/); return [f, md5] as [string, string]; }));
      for (const [file, md5] of want) {
        if (got.get(file) !== md5) {
          result.checksumMismatches++;
          result.problems.push(`volume ${name} file ${file}: md5 ${got.get(file) ?? 'missing'}, written ${md5}`);
        }
      }
    }
    for (const v of VOLUMES) {
      const r = await d.docker(['volume', 'rm', v.name]);
      if (r.code !== 0) result.problems.push(`docker volume rm ${v.name} failed: ${r.stderr.trim()}`);
    }
  } finally {
    if (d) {
      await d.removeAll([nv?.pluginName ?? '']).catch(() => undefined);
      await d.stop().catch(() => undefined);
    }
    await nv?.cleanup();
  }
  result.notes.push(`seed ${o.seed}; ${[...files.values()].reduce((a, m) => a + m.size, 0)} files from containers that succeeded`);
  result.durationMs = Date.now() - started;
  return result;
}
