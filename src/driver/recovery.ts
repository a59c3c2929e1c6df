import { isNetvolError } from '../errors';
import type { Logger } from '../log';
import type { AttachStack } from './attach';
import type { BackendPool } from './backends';
import { readMeta } from './catalog';
import { Ledger, mountCount, VolumeRecord } from './ledger';
import type { VolumeLocks } from './locks';
import type { Mounts } from './mounts';
import type { Removal } from './removal';

/**
 * Recovery at start: before the socket listens, finish or undo what a crash interrupted and make
 * the ledger agree with the kernel's mount table (restore); after it listens, mount again the
 * volumes that still have mount IDs but lost their mount (remountAll).
 */
export class Recovery {
  constructor(
    private readonly o: {
      pool: BackendPool;
      ledger: Ledger;
      locks: VolumeLocks;
      stack: AttachStack;
      removal: Removal;
      mounts: Mounts;
      log: Logger;
    },
  ) {}

  /**
   * At start, before the socket listens: finish or undo operations a crash interrupted, and make
   * the records agree with the kernel's mount table for volumes nobody holds.
   */
  async restore(): Promise<void> {
    for (const [name, record] of Object.entries(this.o.ledger.records)) {
      try {
        await this.o.locks.run(name, () => this.restoreOne(name, record));
      } catch (err) {
        this.o.log.error('cannot restore volume; will retry on its next use', { volume: name, backend: record.backend, error: (err as Error).message });
      }
    }
    await this.o.ledger.save();
  }

  private async restoreOne(name: string, record: VolumeRecord): Promise<void> {
    const { pool, ledger, stack, log } = this.o;
    if (record.marking && record.pending !== 'remove') {
      // A Remove cut off in its handshake: its marker would keep every other host from mounting.
      await this.o.removal.unmarkIfMine(await pool.open(record.backend, name), name);
    }
    delete record.marking;
    if (record.pending === 'create') {
      const backend = await pool.open(record.backend, name);
      // Making an image attaches the volume for a moment (mkfs runs on this host): a daemon killed
      // meanwhile leaves that attachment, which nothing else would ever detach.
      await pool.bounded(backend.detach(name), `detaching half-created volume ${name}`, name);
      const meta = await pool.bounded(readMeta(backend, name), `checking half-created volume ${name}`, name);
      if (!meta) {
        await pool.bounded(backend.removeFolder(name), `removing half-created volume ${name}`, name);
        log.warn('removed a volume whose creation was interrupted', { volume: name, backend: backend.name });
      }
      delete record.pending;
      ledger.tidy(name);
      return;
    }
    if (record.pending === 'remove') {
      if (mountCount(record.mounts) === 0) {
        const policy = record.onRemove ?? 'delete';
        log.warn('finishing a remove that was interrupted', { volume: name, backend: record.backend, onRemove: policy });
        await this.o.removal.applyPolicy(await pool.open(record.backend, name), name, policy);
        ledger.drop(name);
        return;
      }
      delete record.pending;
      delete record.onRemove;
    }
    const mounted = await this.o.mounts.isMounted(stack.mountpoint(name));
    if (mountCount(record.mounts) === 0 && (mounted || record.attached)) {
      await stack.detach(name, record, await pool.open(record.backend, name));
    } else if (mountCount(record.mounts) > 0 && !mounted) {
      record.attached = false;
      // Not mounted after all (the host rebooted): drop the hold seeded from the ledger; the remount claims it afresh.
      const backend = await pool.open(record.backend, name);
      pool.presenceOf(backend)?.setHold(name, undefined);
    } else if (mountCount(record.mounts) > 0) {
      record.attached = true;
      await this.retakeHold(name, record);
    }
    ledger.tidy(name);
  }

  /**
   * After a restart, a volume still mounted here is published again; an image volume takes its lease
   * again, and if another live host holds it meanwhile, this host fences its own mount.
   */
  private async retakeHold(name: string, record: VolumeRecord): Promise<void> {
    const { pool } = this.o;
    const backend = await pool.open(record.backend, name);
    const presence = pool.presenceOf(backend);
    if (!presence) return;
    if (record.layout !== 'image') {
      presence.setHold(name, 'shared');
      await pool.bounded(presence.publish(), `recording the attachment of volume ${name}`, name);
      return;
    }
    try {
      await presence.confirmExclusive(name, pool.judgeDeadline(backend, 60_000));
    } catch (err) {
      if (!isNetvolError(err, 'LEASE_HELD')) throw err;
      await this.o.stack.fence(backend, [name], `after a restart, another host holds the volume's lease (${err.message})`);
    }
  }

  /**
   * After the socket listens: re-attach every volume that has live mount IDs but lost its mount
   * (or whose network attachment died), each with its own lock and timeout.
   */
  async remountAll(): Promise<void> {
    const { ledger, locks, stack, log } = this.o;
    await Promise.all(
      Object.entries(ledger.records).map(async ([name, record]) => {
        if (mountCount(record.mounts) === 0 || record.fenced) return;
        try {
          await locks.run(
            name,
            async (signal) => {
              const live = record.attached ? await stack.liveness(name, record) : 'down';
              if (live === 'live') return;
              if (live === 'unreachable') {
                log.warn('the server of a volume with live mounts does not answer; leaving its attachment to reconnect by itself', { volume: name, backend: record.backend });
                return;
              }
              log.warn('re-attaching a volume that has live mounts but lost its mount', { volume: name, backend: record.backend });
              await stack.attach(name, record, undefined, signal);
              await ledger.save();
            },
            'remount',
          );
        } catch (err) {
          log.error('cannot re-attach volume; the next Mount will retry', { volume: name, backend: record.backend, error: (err as Error).message });
        }
      }),
    );
  }
}
