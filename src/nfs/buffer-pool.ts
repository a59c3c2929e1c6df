// Reuse of large receive buffers. Touching freshly allocated memory is costly
// (page faults on every new page), so the records that carry READ data are
// assembled in buffers that go back to a pool once their data has been copied
// to its destination.

const MIN_POOLED = 64 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private retained = 0;
  private idle?: NodeJS.Timeout;

  /**
   * Keeps at most `maxRetainedBytes` of free buffers, and none once nothing was released for
   * `idleMs` (a mount that read a large file once does not hold its buffers for ever).
   */
  constructor(
    private readonly maxRetainedBytes = 64 * 1024 * 1024,
    private readonly idleMs = 5000,
  ) {}

  /** Bytes of free buffers kept for reuse. */
  get retainedBytes(): number {
    return this.retained;
  }

  /** Sizes below this are not pooled. */
  static readonly minPooledSize = MIN_POOLED;

  /** A buffer of at least `size` bytes (its length is the size class). */
  acquire(size: number): Buffer {
    const cls = sizeClass(size);
    const list = this.free.get(cls);
    const buf = list?.pop();
    if (buf) {
      this.retained -= cls;
      return buf;
    }
    return Buffer.allocUnsafeSlow(cls);
  }

  /** Gives a buffer from acquire() back; nothing may use it afterwards. */
  release(buf: Buffer): void {
    const cls = buf.length;
    if (cls !== sizeClass(cls) || this.retained + cls > this.maxRetainedBytes) return;
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    list.push(buf);
    this.retained += cls;
    if (this.idle) this.idle.refresh();
    else this.idle = setTimeout(() => this.trim(), this.idleMs).unref();
  }

  private trim(): void {
    this.idle = undefined;
    this.free.clear();
    this.retained = 0;
  }
}

/**
 * Eight classes per power of two (a 1 MiB READ reply, a little over 1 MiB, takes 1.125 MiB, not 2),
 * none below MIN_POOLED.
 */
export function sizeClass(size: number): number {
  if (size <= MIN_POOLED) return MIN_POOLED;
  const step = Math.max(MIN_POOLED, 2 ** Math.floor(Math.log2(size)) / 8);
  return Math.ceil(size / step) * step;
}
