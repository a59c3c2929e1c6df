/**
 * Imported first by main.ts: each request reader of the FUSE session waits in a thread of libuv's
 * pool, so the pool needs room for them and for ordinary file work. libuv reads this variable
 * once, when the pool first starts.
 */
export const FUSE_READERS = 4;
process.env.UV_THREADPOOL_SIZE ??= String(FUSE_READERS + 4);
