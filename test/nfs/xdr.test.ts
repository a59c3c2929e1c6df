import fc from 'fast-check';
import { XdrReader, XdrWriter, XdrDecodeError, RecordDecoder, authSys, NFS3_STATUS, NfsError } from '../../src/nfs';
import { BufferPool, sizeClass } from '../../src/nfs/buffer-pool';
import { decodeReply, writeCallHeader } from '../../src/nfs/rpc-message';

describe('XDR', () => {
  test('integers, booleans and 64-bit values round-trip in big-endian order', () => {
    const w = new XdrWriter(4);
    w.uint32(0xdeadbeef).int32(-2).bool(true).uint64(0x0102030405060708n).uint64(2 ** 40 + 7);
    const buf = w.toBuffer();
    expect(buf.subarray(0, 4).toString('hex')).toBe('deadbeef');
    expect(buf.length).toBe(4 + 4 + 4 + 8 + 8);
    const r = new XdrReader(buf);
    expect(r.uint32()).toBe(0xdeadbeef);
    expect(r.int32()).toBe(-2);
    expect(r.bool()).toBe(true);
    expect(r.uint64()).toBe(0x0102030405060708n);
    expect(r.uint64Number()).toBe(2 ** 40 + 7);
    expect(r.remaining).toBe(0);
  });

  test('opaque data and strings are padded to four bytes with zeros', () => {
    const buf = new XdrWriter().opaque(Buffer.from([1, 2, 3, 4, 5])).string('ab').toBuffer();
    expect(buf.toString('hex')).toBe('00000005' + '0102030405000000' + '00000002' + '61620000');
    const r = new XdrReader(buf);
    expect([...r.opaque()]).toEqual([1, 2, 3, 4, 5]);
    expect(r.string()).toBe('ab');
  });

  test('decoded opaque data is a view of the record, not a copy', () => {
    const buf = new XdrWriter().opaque(Buffer.from('abcdefgh')).toBuffer();
    const data = new XdrReader(buf).opaque();
    buf[4] = 0x7a;
    expect(data.toString()).toBe('zbcdefgh');
  });

  test('opaqueRef keeps a large payload as its own segment with its padding', () => {
    const payload = Buffer.alloc(4097, 0xab);
    const w = new XdrWriter();
    w.uint32(7).opaqueRef(payload).uint32(9);
    const segs = w.segments();
    expect(segs).toContain(payload);
    expect(w.length).toBe(4 + 4 + 4097 + 3 + 4);
    const r = new XdrReader(Buffer.concat(segs));
    expect(r.uint32()).toBe(7);
    expect(r.opaque().equals(payload)).toBe(true);
    expect(r.uint32()).toBe(9);
  });

  test('optional values and arrays encode a presence flag and a count', () => {
    const w = new XdrWriter();
    w.optional<number>(undefined, (x, v) => x.uint32(v)).optional(5, (x, v) => x.uint32(v));
    w.uint32(2).uint32(10).uint32(20);
    const r = new XdrReader(w.toBuffer());
    expect(r.optional((x) => x.uint32())).toBeUndefined();
    expect(r.optional((x) => x.uint32())).toBe(5);
    expect(r.array((x) => x.uint32())).toEqual([10, 20]);
  });

  test('reading past the end throws XdrDecodeError', () => {
    const r = new XdrReader(Buffer.from([0, 0, 0, 9, 1, 2]));
    expect(() => r.opaque()).toThrow(XdrDecodeError);
  });

  test('out-of-range integers are refused when encoding', () => {
    expect(() => new XdrWriter().uint32(-1)).toThrow(RangeError);
    expect(() => new XdrWriter().uint32(2 ** 32)).toThrow(RangeError);
    expect(() => new XdrWriter().uint64(-1n)).toThrow(RangeError);
  });
});

describe('record marking', () => {
  function frame(parts: Buffer[], lastFlags: boolean[]): Buffer {
    return Buffer.concat(
      parts.flatMap((p, i) => {
        const h = Buffer.alloc(4);
        h.writeUInt32BE(((lastFlags[i] ? 0x80000000 : 0) | p.length) >>> 0);
        return [h, p];
      }),
    );
  }

  test('records split across stream chunks at any byte are reassembled', () => {
    const a = Buffer.from('first record');
    const b = Buffer.from('second');
    const stream = Buffer.concat([frame([a], [true]), frame([b], [true])]);
    for (let cut = 1; cut < stream.length; cut++) {
      const got: string[] = [];
      const d = new RecordDecoder((rec) => got.push(rec.toString()));
      d.push(stream.subarray(0, cut));
      d.push(stream.subarray(cut));
      expect(got).toEqual(['first record', 'second']);
    }
  });

  test('a record made of several fragments is delivered once, whole', () => {
    const got: string[] = [];
    const d = new RecordDecoder((rec) => got.push(rec.toString()));
    d.push(frame([Buffer.from('ab'), Buffer.from(''), Buffer.from('cd')], [false, false, true]));
    expect(got).toEqual(['abcd']);
  });

  test('the rest of a large fragment read in place lands in the record itself, with no copy', () => {
    const body = Buffer.alloc(100_000, 0x5a);
    const stream = frame([body], [true]);
    const got: Buffer[] = [];
    const d = new RecordDecoder((rec) => got.push(rec));
    expect(d.inPlace(1)).toBeUndefined(); // no header yet: nothing knows where bytes go
    d.push(stream.subarray(0, 4 + 1000));
    expect(d.inPlace(100_000)).toBeUndefined(); // 99,000 bytes are left, fewer than asked for
    const view = d.inPlace(4096)!;
    expect(view.length).toBe(99_000);
    stream.copy(view, 0, 4 + 1000, 4 + 50_000);
    d.landed(49_000);
    const rest = d.inPlace(4096)!;
    expect(rest.length).toBe(50_000);
    expect(() => d.landed(50_001)).toThrow(RangeError);
    stream.copy(rest, 0, 4 + 50_000);
    d.landed(50_000);
    expect(got).toHaveLength(1);
    expect(got[0].equals(body)).toBe(true);
    expect(got[0].buffer).toBe(view.buffer);
    expect(d.inPlace(1)).toBeUndefined();
  });

  test('any mix of copied chunks and in-place reads gives the records a plain byte stream gives', () => {
    const record = fc.uint8Array({ minLength: 0, maxLength: 300 }).map((b) => Buffer.from(b));
    fc.assert(
      fc.property(fc.array(fc.array(record, { minLength: 1, maxLength: 3 }), { maxLength: 6 }), fc.array(fc.nat(400), { minLength: 1, maxLength: 50 }), fc.nat(120), (records, sizes, min) => {
        // Each record as fragments (the last one marked), all in one stream.
        const stream = Buffer.concat(records.map((frags) => frame(frags, frags.map((_, i) => i === frags.length - 1))));
        const got: string[] = [];
        const d = new RecordDecoder((rec) => got.push(rec.toString('hex')));
        let pos = 0;
        for (let i = 0; pos < stream.length; i++) {
          const want = Math.max(1, sizes[i % sizes.length]);
          const view = d.inPlace(min);
          if (view) {
            const n = Math.min(want, view.length);
            stream.copy(view, 0, pos, pos + n);
            d.landed(n);
            pos += n;
          } else {
            d.push(stream.subarray(pos, pos + want));
            pos += want;
          }
        }
        expect(got).toEqual(records.map((frags) => Buffer.concat(frags).toString('hex')));
      }),
    );
  });

  test('a record larger than the limit is refused', () => {
    const d = new RecordDecoder(() => undefined, 16);
    const h = Buffer.alloc(4);
    h.writeUInt32BE((0x80000000 | 17) >>> 0);
    expect(() => d.push(h)).toThrow(RangeError);
  });
});

describe('buffer pool', () => {
  test('a 1 MiB READ reply (1 MiB and its header) takes a buffer of 1.125 MiB, not 2', () => {
    expect(sizeClass(1024 * 1024 + 148)).toBe(1024 * 1024 + 128 * 1024);
    for (const n of [1, 65_536, 65_537, 1_000_000, 3_000_000, 64 * 1024 * 1024]) {
      expect(sizeClass(n)).toBeGreaterThanOrEqual(n);
      expect(sizeClass(n)).toBeLessThanOrEqual(Math.max(65_536, n + 65_536, n * 1.125));
      expect(sizeClass(sizeClass(n))).toBe(sizeClass(n));
    }
  });

  test('a released buffer is handed out again for a record of its size class', () => {
    const pool = new BufferPool();
    const a = pool.acquire(1024 * 1024 + 148);
    expect(pool.acquire(1024 * 1024 + 148)).not.toBe(a);
    pool.release(a);
    expect(pool.acquire(1024 * 1024 + 100)).toBe(a);
  });

  test('free buffers are let go once nothing was released for a while', async () => {
    const pool = new BufferPool(64 * 1024 * 1024, 50);
    const a = pool.acquire(200_000);
    const b = pool.acquire(200_000);
    pool.release(a);
    await new Promise((r) => setTimeout(r, 30));
    pool.release(b); // activity: the idle time starts again
    await new Promise((r) => setTimeout(r, 30));
    expect(pool.retainedBytes).toBe(2 * sizeClass(200_000));
    await new Promise((r) => setTimeout(r, 60));
    expect(pool.retainedBytes).toBe(0);
    expect(pool.acquire(200_000)).not.toBe(a);
  });
});

describe('RPC messages', () => {
  test('AUTH_SYS credentials carry uid, gid and supplementary groups', () => {
    const cred = authSys({ uid: 1000, gid: 100, gids: [4, 27], machineName: 'box' });
    const r = new XdrReader(cred);
    expect(r.uint32()).toBe(1); // AUTH_SYS
    const body = new XdrReader(r.opaque());
    body.uint32(); // stamp
    expect(body.string()).toBe('box');
    expect(body.uint32()).toBe(1000);
    expect(body.uint32()).toBe(100);
    expect(body.array((x) => x.uint32())).toEqual([4, 27]);
    expect(() => authSys({ uid: 0, gid: 0, gids: new Array(17).fill(1) })).toThrow(RangeError);
  });

  test('a call header holds xid, RPC version 2, program, version and procedure', () => {
    const w = new XdrWriter();
    writeCallHeader(w, 42, 100003, 3, 6, authSys({ uid: 0, gid: 0, machineName: 'h' }));
    const r = new XdrReader(w.toBuffer(), 4);
    expect([r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.uint32()]).toEqual([42, 0, 2, 100003, 3, 6]);
  });

  function reply(words: number[]): Buffer {
    const w = new XdrWriter();
    w.uint32(42).uint32(1);
    for (const x of words) w.uint32(x);
    return w.toBuffer();
  }

  test('an accepted, successful reply yields a reader at the results', () => {
    const r = decodeReply(reply([0, 0, 0, 0, 1234]), 'T');
    expect(r.uint32()).toBe(1234);
  });

  test('refused calls become RpcErrors with specific codes', () => {
    expect(() => decodeReply(reply([0, 0, 0, 1]), 'T')).toThrow(expect.objectContaining({ code: 'EPROGUNAVAIL' }));
    expect(() => decodeReply(reply([0, 0, 0, 2, 2, 4]), 'T')).toThrow(expect.objectContaining({ code: 'EPROGMISMATCH' }));
    expect(() => decodeReply(reply([0, 0, 0, 3]), 'T')).toThrow(expect.objectContaining({ code: 'EPROCUNAVAIL' }));
    expect(() => decodeReply(reply([1, 1, 5]), 'T')).toThrow(expect.objectContaining({ code: 'EAUTH' }));
    expect(() => decodeReply(reply([1, 0, 2, 2]), 'T')).toThrow(expect.objectContaining({ code: 'ERPCMISMATCH' }));
  });
});

describe('status mapping', () => {
  test.each([
    [1, 'EPERM'],
    [2, 'ENOENT'],
    [5, 'EIO'],
    [13, 'EACCES'],
    [17, 'EEXIST'],
    [18, 'EXDEV'],
    [20, 'ENOTDIR'],
    [21, 'EISDIR'],
    [22, 'EINVAL'],
    [27, 'EFBIG'],
    [28, 'ENOSPC'],
    [30, 'EROFS'],
    [63, 'ENAMETOOLONG'],
    [66, 'ENOTEMPTY'],
    [69, 'EDQUOT'],
    [70, 'ESTALE'],
  ])('nfsstat3 %i maps to %s', (status, code) => {
    const err = new NfsError(status, 'NFS3.TEST');
    expect(err.code).toBe(code);
    expect(err.nfsStatus).toBe(status);
    expect(err.message).toContain('NFS3.TEST');
  });

  test('every known status has a distinct name and an E-prefixed code', () => {
    const names = Object.values(NFS3_STATUS).map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const e of Object.values(NFS3_STATUS)) expect(e.code).toMatch(/^E[A-Z]+$/);
  });

  test('an unknown status maps to EIO and keeps its number', () => {
    const err = new NfsError(4242, 'NFS3.TEST');
    expect(err.code).toBe('EIO');
    expect(err.nfsStatus).toBe(4242);
  });
});
