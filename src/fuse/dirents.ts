import type { DirEntry } from './ops';
import { direntSize, ENTRY_OUT_SIZE, writeDirent, writeEntryOut } from './protocol';

const DOT = Buffer.from('.');
const DOT_DOT = Buffer.from('..');

/**
 * Packs directory entries into a READDIR (or READDIRPLUS) answer of at most `size` bytes, stopping
 * at the first entry that does not fit: the kernel asks again from that entry's cookie. For
 * READDIRPLUS, an entry's lookup is taken only once the entry is sure to be sent (the kernel
 * counts it, and will FORGET it), and never for "." and "..", which the kernel does not count.
 */
export function packDirents(list: DirEntry[], size: number, plus: boolean, entryTtlMs: number, attrTtlMs: number): Buffer {
  const out = Buffer.alloc(size);
  let off = 0;
  for (const e of list) {
    const name = typeof e.name === 'string' ? Buffer.from(e.name) : e.name;
    const need = (plus ? ENTRY_OUT_SIZE : 0) + direntSize(name.length);
    if (off + need > size) break;
    if (plus) {
      const isDot = name.equals(DOT) || name.equals(DOT_DOT);
      const entry = isDot ? undefined : e.lookup?.();
      // Node ID 0: a name without attributes to offer; the kernel looks it up when it needs it.
      if (entry) writeEntryOut(out, off, entry.nodeid, entry.generation ?? 0, entry.entryTtlMs ?? entryTtlMs, entry.attrTtlMs ?? attrTtlMs, entry.attr);
      else out.fill(0, off, off + ENTRY_OUT_SIZE);
      off += ENTRY_OUT_SIZE;
    }
    off = writeDirent(out, off, e.ino, e.offset, (e.mode >>> 12) & 0o17, name);
  }
  return out.subarray(0, off);
}
