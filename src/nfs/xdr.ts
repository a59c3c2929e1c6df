// XDR (RFC 4506) encoding and decoding.
//
// The reader works in place on a received record: opaque data comes back as a
// view (subarray) of that record, never a copy. The writer keeps large opaque
// payloads (WRITE data) as separate segments so they go to the socket without
// being copied into the message buffer.

export class XdrDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XdrDecodeError';
  }
}

const TWO_32 = 0x1_0000_0000;

function padLength(len: number): number {
  return (4 - (len & 3)) & 3;
}

const ZERO_PAD = Buffer.alloc(4);

export class XdrReader {
  private pos: number;
  private releaseFn?: () => void;

  constructor(
    private readonly buf: Buffer,
    offset = 0,
    release?: () => void,
  ) {
    this.pos = offset;
    this.releaseFn = release;
  }

  /**
   * Hands the underlying record back for reuse, when it came from a pool.
   * Nothing read from this reader (opaque views included) may be used after.
   */
  release(): void {
    const fn = this.releaseFn;
    this.releaseFn = undefined;
    fn?.();
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new XdrDecodeError(`XDR underflow: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`);
    }
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  bool(): boolean {
    const v = this.uint32();
    if (v > 1) throw new XdrDecodeError(`XDR bool out of range: ${v}`);
    return v === 1;
  }

  uint64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A uint64 as a number; exact up to 2^53, which covers any real file size. */
  uint64Number(): number {
    this.need(8);
    const hi = this.buf.readUInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  /** Fixed-length opaque, returned as a view into the record (no copy). */
  fixedOpaque(len: number): Buffer {
    const padded = len + padLength(len);
    this.need(padded);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += padded;
    return v;
  }

  /** Variable-length opaque, returned as a view into the record (no copy). */
  opaque(maxLen = Infinity): Buffer {
    const len = this.uint32();
    if (len > maxLen) throw new XdrDecodeError(`XDR opaque length ${len} exceeds limit ${maxLen}`);
    return this.fixedOpaque(len);
  }

  string(maxLen = Infinity): string {
    return this.opaque(maxLen).toString('utf8');
  }

  optional<T>(read: (r: XdrReader) => T): T | undefined {
    return this.bool() ? read(this) : undefined;
  }

  array<T>(read: (r: XdrReader) => T, maxLen = Infinity): T[] {
    const n = this.uint32();
    if (n > maxLen) throw new XdrDecodeError(`XDR array length ${n} exceeds limit ${maxLen}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
}

export class XdrWriter {
  private buf: Buffer;
  private pos = 0;
  private readonly done: Buffer[] = [];
  private doneBytes = 0;

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Total bytes written so far. */
  get length(): number {
    return this.doneBytes + this.pos;
  }

  uint32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`uint32 out of range: ${v}`);
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  int32(v: number): this {
    if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) throw new RangeError(`int32 out of range: ${v}`);
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  bool(v: boolean): this {
    return this.uint32(v ? 1 : 0);
  }

  uint64(v: bigint | number): this {
    const big = typeof v === 'bigint' ? v : BigInt(v);
    if (big < 0n || big > 0xffff_ffff_ffff_ffffn) throw new RangeError(`uint64 out of range: ${v}`);
    this.ensure(8);
    this.buf.writeBigUInt64BE(big, this.pos);
    this.pos += 8;
    return this;
  }

  fixedOpaque(data: Uint8Array, len = data.length): this {
    if (data.length !== len) throw new RangeError(`fixed opaque must be ${len} bytes, got ${data.length}`);
    const pad = padLength(len);
    this.ensure(len + pad);
    this.buf.set(data, this.pos);
    this.pos += len;
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
    return this;
  }

  opaque(data: Uint8Array): this {
    this.uint32(data.length);
    return this.fixedOpaque(data);
  }

  /**
   * Variable-length opaque whose bytes are not copied: the buffer is kept as
   * its own segment and written to the socket as is. The caller must not
   * change it until the message is sent.
   */
  opaqueRef(data: Buffer): this {
    this.uint32(data.length);
    if (data.length < 1024) return this.fixedOpaque(data);
    this.flush();
    this.done.push(data);
    this.doneBytes += data.length;
    const pad = padLength(data.length);
    if (pad) {
      this.done.push(ZERO_PAD.subarray(0, pad));
      this.doneBytes += pad;
    }
    return this;
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  optional<T>(v: T | undefined, write: (w: XdrWriter, v: T) => void): this {
    if (v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  /** Overwrites a uint32 already written at an absolute offset of the first segment. */
  patchUint32(offset: number, v: number): void {
    const target = this.done.length > 0 ? this.done[0] : this.buf;
    target.writeUInt32BE(v >>> 0, offset);
  }

  private flush(): void {
    if (this.pos === 0) return;
    const seg = this.buf.subarray(0, this.pos);
    this.done.push(seg);
    this.doneBytes += seg.length;
    this.buf = Buffer.allocUnsafe(64);
    this.pos = 0;
  }

  /** The encoded message as segments, in order. */
  segments(): Buffer[] {
    this.flush();
    return this.done.slice();
  }

  /** The encoded message as one buffer (copies if there are several segments). */
  toBuffer(): Buffer {
    const segs = this.segments();
    return segs.length === 1 ? segs[0] : Buffer.concat(segs);
  }
}
