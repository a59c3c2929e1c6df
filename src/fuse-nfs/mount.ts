import Fuse from 'fuse-native';

/** Largest WRITE and READ the kernel sends to a libfuse 2 filesystem (its buffer is 128 KiB plus a header). */
export const FUSE_MAX_IO = 128 * 1024;

/**
 * fuse-native builds the `-o` string from a fixed list of options that lacks big_writes and
 * max_write, so without them the kernel sends writes 4 KiB at a time. This subclass appends the
 * options libfuse 2 understands but fuse-native does not name.
 */
export class NetvolFuse extends Fuse {
  constructor(
    mnt: string,
    ops: ConstructorParameters<typeof Fuse>[1],
    opts: ConstructorParameters<typeof Fuse>[2],
    private readonly extra: string[],
  ) {
    super(mnt, ops, opts);
  }

  /** What libfuse is given, for the log. */
  optionString(): string {
    return this._fuseOptions();
  }

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    if (this.extra.length === 0) return base;
    return base ? `${base},${this.extra.join(',')}` : `-o${this.extra.join(',')}`;
  }
}

/** Options for libfuse beyond fuse-native's list: large requests, kernel readahead, stable inode numbers. */
export function extraFuseOptions(): string[] {
  return ['big_writes', `max_write=${FUSE_MAX_IO}`, `max_readahead=${1024 * 1024}`, 'use_ino'];
}
