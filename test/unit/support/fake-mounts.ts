/**
 * A stand-in for the kernel's mounts, for driver tests that need no root: it remembers what is
 * "mounted" where and counts the calls, and can be told to fail the next image mount. Images are
 * made as sparse files so the backend folder looks as after a real mkfs.
 */
import { promises as fs } from 'node:fs';
import type { Mounts } from '../../../src/driver';

export interface FakeMount {
  kind: 'image' | 'bind';
  source: string;
}

export class FakeMounts implements Mounts {
  /** Target → what is mounted there. */
  readonly table = new Map<string, FakeMount>();
  /** Every call that changed the table, in order, as "verb target". */
  readonly log: string[] = [];
  /** When set, the next mountImage() fails with it (and mounts nothing). */
  failNextImageMount?: Error;
  /** When set, the next unmount() fails with it (and leaves the mount in place). */
  failNextUnmount?: Error;

  async createImage(file: string, sizeBytes: number): Promise<void> {
    const handle = await fs.open(file, 'wx', 0o600);
    try {
      await handle.truncate(sizeBytes);
    } finally {
      await handle.close();
    }
  }

  async mountImage(file: string, target: string): Promise<void> {
    if (this.table.get(target)?.source === file) return;
    const failure = this.failNextImageMount;
    if (failure) {
      this.failNextImageMount = undefined;
      throw failure;
    }
    if (this.table.has(target)) throw new Error(`${target} is already a mountpoint`);
    this.table.set(target, { kind: 'image', source: file });
    this.log.push(`mountImage ${target}`);
  }

  async unmountImage(target: string): Promise<void> {
    if (!this.table.delete(target)) return;
    this.log.push(`unmountImage ${target}`);
  }

  async bind(source: string, target: string): Promise<void> {
    if (this.table.has(target)) throw new Error(`${target} is already a mountpoint`);
    this.table.set(target, { kind: 'bind', source });
    this.log.push(`bind ${target}`);
  }

  async isMounted(target: string): Promise<boolean> {
    return this.table.has(target);
  }

  async unmount(target: string): Promise<void> {
    const failure = this.failNextUnmount;
    if (failure) {
      this.failNextUnmount = undefined;
      throw failure;
    }
    if (!this.table.delete(target)) throw new Error(`umount: ${target}: not mounted`);
    this.log.push(`unmount ${target}`);
  }

  async usage(): Promise<{ sizeBytes: number; usedBytes: number; availableBytes: number }> {
    return { sizeBytes: 64 * 1024 * 1024, usedBytes: 3 * 1024 * 1024, availableBytes: 61 * 1024 * 1024 };
  }

  /** Fake image sizes: the file the fake "mounted" at `target`. */
  async imageBytes(target: string): Promise<number> {
    const m = this.table.get(target);
    if (m?.kind !== 'image') throw new Error(`${target} is not an image mount`);
    return (await fs.stat(m.source)).size;
  }

  /** Extends the image file as the real grow does; no filesystem to grow here. */
  async growImage(target: string, _fs: string, sizeBytes: number, _how: string): Promise<{ device: string; fileBytesBefore: number; deviceBytes: number; filesystemBytes: number }> {
    const before = await this.imageBytes(target);
    const m = this.table.get(target) as FakeMount;
    if (before < sizeBytes) await fs.truncate(m.source, sizeBytes);
    this.log.push(`growImage ${target} ${sizeBytes}`);
    return { device: '/dev/loop-fake', fileBytesBefore: before, deviceBytes: sizeBytes, filesystemBytes: sizeBytes };
  }

  /** As after a reboot: the kernel has forgotten every mount. */
  forgetAll(): void {
    this.table.clear();
  }
}
