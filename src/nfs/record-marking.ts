// ONC RPC record marking over a byte stream (RFC 5531 §11): each record is one
// or more fragments, each preceded by a 4-byte header whose top bit marks the
// last fragment and whose low 31 bits give the fragment length.

const LAST_FRAGMENT = 0x8000_0000;

/** Header for a record sent as a single fragment. */
export function recordMark(length: number): Buffer {
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32BE((LAST_FRAGMENT | length) >>> 0, 0);
  return h;
}

/**
 * Reassembles records from stream chunks. Chunks are kept by reference and
 * joined once per record (a record inside one chunk is a view, not a copy).
 */
export class RecordDecoder {
  private header = Buffer.alloc(4);
  private headerHave = 0;
  private fragLeft = 0;
  private lastFrag = false;
  private inFragment = false;
  private parts: Buffer[] = [];
  private partsBytes = 0;

  constructor(
    private readonly onRecord: (record: Buffer) => void,
    private readonly maxRecordBytes = 64 * 1024 * 1024,
  ) {}

  /** Feeds stream bytes; throws if a record exceeds the limit. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.inFragment) {
        const take = Math.min(4 - this.headerHave, chunk.length - pos);
        if (this.headerHave === 0 && take === 4) {
          this.startFragment(chunk.readUInt32BE(pos));
        } else {
          chunk.copy(this.header, this.headerHave, pos, pos + take);
          this.headerHave += take;
          if (this.headerHave === 4) this.startFragment(this.header.readUInt32BE(0));
        }
        pos += take;
        if (this.inFragment && this.fragLeft === 0) this.endFragment();
        continue;
      }
      const take = Math.min(this.fragLeft, chunk.length - pos);
      this.parts.push(chunk.subarray(pos, pos + take));
      this.partsBytes += take;
      this.fragLeft -= take;
      pos += take;
      if (this.fragLeft === 0) this.endFragment();
    }
  }

  private startFragment(word: number): void {
    this.headerHave = 0;
    this.inFragment = true;
    this.lastFrag = (word & LAST_FRAGMENT) !== 0;
    this.fragLeft = word & 0x7fff_ffff;
    if (this.partsBytes + this.fragLeft > this.maxRecordBytes) {
      throw new RangeError(`RPC record larger than ${this.maxRecordBytes} bytes`);
    }
  }

  private endFragment(): void {
    this.inFragment = false;
    if (!this.lastFrag) return;
    const parts = this.parts;
    const record = parts.length === 1 ? parts[0] : Buffer.concat(parts, this.partsBytes);
    this.parts = [];
    this.partsBytes = 0;
    this.onRecord(record);
  }
}
