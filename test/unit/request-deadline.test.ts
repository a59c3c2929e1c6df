import { NetvolError } from '../../src/errors';
import { outsideRequest, RequestDeadline, runWithin, withinRequest } from '../../src/system';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const expired = () => new NetvolError('TIMEOUT', 'volume v: mount did not finish within 0.2 s');

describe('RequestDeadline and withinRequest', () => {
  it('a call inside a request ends at the request deadline, and stays tracked until it settles', async () => {
    const deadline = new RequestDeadline(200, expired);
    let finishCall!: () => void;
    const call = new Promise<void>((r) => (finishCall = r));
    const waited = runWithin(deadline, () => withinRequest(call, 10_000, 'attaching volume v'));
    await expect(waited).rejects.toThrow('volume v: mount did not finish within 0.2 s');
    expect(deadline.running).toBe(1);
    let settled = false;
    const all = deadline.settled().then(() => (settled = true));
    await sleep(50);
    expect(settled).toBe(false);
    finishCall();
    await all;
    expect(deadline.running).toBe(0);
    deadline.finish();
  });

  it('shared work a request starts (outsideRequest) and timers left behind after it finished are no longer its', async () => {
    const deadline = new RequestDeadline(100, expired);
    let shared!: Promise<string>;
    let late!: Promise<string>;
    await runWithin(deadline, async () => {
      shared = outsideRequest(() => sleep(300).then(() => withinRequest(Promise.resolve('beat'), 1000, 'heartbeat')));
      setTimeout(() => (late = withinRequest(sleep(10).then(() => 'late'), 1000, 'later call')), 250);
    });
    expect(deadline.running).toBe(0);
    await sleep(150); // the deadline has passed and aborted
    expect(deadline.signal.aborted).toBe(true);
    deadline.finish();
    await expect(shared).resolves.toBe('beat');
    await sleep(150);
    await expect(late).resolves.toBe('late');
  });

  it('outside any request withinRequest is a plain timeout', async () => {
    await expect(withinRequest(sleep(500), 50, 'a slow call', 'v')).rejects.toMatchObject({ code: 'TIMEOUT', message: 'a slow call did not finish within 0 s' });
  });
});

describe('VolumeLocks under deadlines', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { VolumeLocks } = require('../../src/driver/locks') as typeof import('../../src/driver/locks');
  const budgets = { createMs: 1000, mountMs: 1000, otherMs: 1000, settleMs: 500 };

  it('work that fails on its own, leaving a call running, is answered with its own error; the leftover call is stopped before the lock is free', async () => {
    const locks = new VolumeLocks(budgets);
    const order: string[] = [];
    let leftover!: Promise<void>;
    const first = locks.run(
      'v',
      async (signal) => {
        leftover = new Promise<void>((r) => signal.addEventListener('abort', () => setTimeout(() => (order.push('leftover stopped'), r()), 50)));
        await withinRequest(leftover, 100, 'a slow call', 'v').catch(() => undefined);
        throw new NetvolError('NOT_FOUND', 'volume v: its own error');
      },
      'mount',
    );
    const second = locks.run('v', async () => void order.push('second runs'), 'mount');
    await expect(first).rejects.toThrow('volume v: its own error');
    await second;
    expect(order).toEqual(['leftover stopped', 'second runs']);
  });
});
