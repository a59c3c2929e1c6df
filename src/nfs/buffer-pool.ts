// Reuse of large receive buffers. Touching freshly allocated memory is costly
// (page faults on every new page), so the records that carry READ data are
// assembled in buffers that go back to a pool once their data has been copied
// to its destination.

const MIN_POOLED = 64 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private retained = 0;

  constructor(private readonly maxRetainedBytes = 64 * 1024 * 1024) {}

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
  }
}

function sizeClass(size: number): number {
  let cls = MIN_POOLED;
  while (cls < size) cls *= 2;
  return cls;
}
