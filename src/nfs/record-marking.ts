// ONC RPC record marking over a byte stream (RFC 5531 §11): each record is one
// or more fragments, each preceded by a 4-byte header whose top bit marks the
// last fragment and whose low 31 bits give the fragment length.

import { BufferPool } from './buffer-pool';

const LAST_FRAGMENT = 0x8000_0000;

/** Header for a record sent as a single fragment. */
export function recordMark(length: number): Buffer {
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32BE((LAST_FRAGMENT | length) >>> 0, 0);
  return h;
}

/**
 * Called with each complete record. For a large record `release` is given:
 * calling it returns the record's memory to the pool, after which the record
 * must not be used. Not calling it is safe (the memory is then collected).
 */
export type RecordHandler = (record: Buffer, release?: () => void) => void;

/**
 * Reassembles records from stream chunks. Bytes are copied out of each chunk,
 * so the caller may reuse its read buffer as soon as push() returns. Each
 * record is copied once, into a buffer sized from its fragment header; or not
 * at all, where the caller reads the rest of a large fragment straight into
 * the record (inPlace(), then landed()).
 */
export class RecordDecoder {
  private header = Buffer.alloc(4);
  private headerHave = 0;
  private fragLeft = 0;
  private lastFrag = false;
  private inFragment = false;
  private record?: Buffer;
  private pooled?: Buffer;
  private filled = 0;

  constructor(
    private readonly onRecord: RecordHandler,
    private readonly maxRecordBytes = 64 * 1024 * 1024,
    private readonly pool?: BufferPool,
  ) {}

  /** Feeds stream bytes; throws if a record exceeds the limit. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.inFragment) {
        const take = Math.min(4 - this.headerHave, chunk.length - pos);
        chunk.copy(this.header, this.headerHave, pos, pos + take);
        this.headerHave += take;
        pos += take;
        if (this.headerHave === 4) {
          this.startFragment(this.header.readUInt32BE(0));
          if (this.fragLeft === 0) this.endFragment();
        }
        continue;
      }
      const take = Math.min(this.fragLeft, chunk.length - pos);
      chunk.copy(this.record!, this.filled, pos, pos + take);
      this.filled += take;
      this.fragLeft -= take;
      pos += take;
      if (this.fragLeft === 0) this.endFragment();
    }
  }

  /**
   * Where the next stream bytes may be read to land in the record without a
   * copy: the rest of the current fragment, when at least `min` bytes of it
   * are still to come; otherwise undefined (read into your own buffer and
   * push() it). Reading past the fragment is impossible: the view ends there.
   */
  inPlace(min: number): Buffer | undefined {
    if (!this.inFragment || this.fragLeft < min || this.fragLeft === 0) return undefined;
    return this.record!.subarray(this.filled, this.filled + this.fragLeft);
  }

  /** Counts `n` bytes that a read put at the start of the last inPlace() view. */
  landed(n: number): void {
    if (!this.inFragment || n > this.fragLeft) throw new RangeError(`${n} bytes landed where the fragment has ${this.fragLeft} left`);
    this.filled += n;
    this.fragLeft -= n;
    if (this.fragLeft === 0) this.endFragment();
  }

  private startFragment(word: number): void {
    this.headerHave = 0;
    this.inFragment = true;
    this.lastFrag = (word & LAST_FRAGMENT) !== 0;
    this.fragLeft = word & 0x7fff_ffff;
    const total = this.filled + this.fragLeft;
    if (total > this.maxRecordBytes) throw new RangeError(`RPC record larger than ${this.maxRecordBytes} bytes`);
    if (this.record && this.record.length >= total) return;
    // First fragment, or a later one that needs more room (rare: servers send one fragment).
    const [buf, pooled] = this.allocate(total);
    if (this.record) this.record.copy(buf, 0, 0, this.filled);
    if (this.pooled) this.pool!.release(this.pooled);
    this.record = buf;
    this.pooled = pooled;
  }

  private allocate(size: number): [Buffer, Buffer | undefined] {
    if (this.pool && size >= BufferPool.minPooledSize) {
      const b = this.pool.acquire(size);
      return [b, b];
    }
    return [Buffer.allocUnsafe(size), undefined];
  }

  private endFragment(): void {
    this.inFragment = false;
    if (!this.lastFrag) return;
    const record = this.record ? this.record.subarray(0, this.filled) : Buffer.alloc(0);
    const pooled = this.pooled;
    this.record = undefined;
    this.pooled = undefined;
    this.filled = 0;
    const pool = this.pool;
    this.onRecord(record, pooled && pool ? () => pool.release(pooled) : undefined);
  }
}
