/** A caller's AbortSignal reaches the NFS client's calls (CallOptions.signal, Nfs3.withSignal). */
import { RpcError } from '../../src/nfs';
import { uniqueName, useGanesha } from './fixture';

const fx = useGanesha({}, { timeoutMs: 20_000 });

async function rejection(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('cancelling calls', () => {
  test('a call through withSignal() on a server that stopped answering ends at the abort with ECANCELED; the client keeps working', async () => {
    const f = await fx.client.create(fx.client.root, uniqueName('a'), { mode: 'guarded', attrs: { mode: 0o640 } });
    await fx.server.pause();
    let err: RpcError;
    const started = Date.now();
    try {
      const controller = new AbortController();
      const pending = rejection(fx.client.withSignal(controller.signal).getattr(f.handle));
      setTimeout(() => controller.abort(), 300);
      err = await pending;
      expect(fx.client.rpc.inFlight).toBe(0);
    } finally {
      fx.server.resume();
    }
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err.code).toBe('ECANCELED');
    expect(err.message).toBe('NFS3.GETATTR: cancelled by the caller');
    expect((await fx.client.getattr(f.handle)).mode).toBe(0o640);
  });

  test('a signal already aborted sends nothing; a view never changes the client it came from', async () => {
    const f = await fx.client.create(fx.client.root, uniqueName('a'));
    const view = fx.client.withSignal(AbortSignal.abort());
    expect((await rejection(view.getattr(f.handle))).code).toBe('ECANCELED');
    expect(view.root).toEqual(fx.client.root);
    expect((await fx.client.getattr(f.handle)).fileid).toBeGreaterThan(0n);
  });
});
