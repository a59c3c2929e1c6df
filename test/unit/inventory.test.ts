import { makeWorld, World } from './support/driver-world';

/** The inventory behind netvolctl ls / inspect over the real local backend. */
jest.setTimeout(60_000);

let w: World;
afterAll(async () => {
  await w?.cleanup();
});

test('a volume mounted on this host of a backend only this host uses is attached on this host\'s id, as on shared backends', async () => {
  w = await makeWorld('inventory');
  await w.driver.create('here', {});
  await w.driver.create('idle', {});
  await w.driver.mount('here', 'c1');
  const all = await w.driver.operations.listAll(true);
  expect(all.find((d) => d.name === 'here')).toMatchObject({ state: 'live', attachedOn: ['unit-host'], mountCount: 1, healthy: true });
  expect(all.find((d) => d.name === 'idle')).toMatchObject({ state: 'live', attachedOn: [], mountCount: 0 });
  expect((await w.driver.operations.inspect('here')).attachedOn).toEqual(['unit-host']);
  await w.driver.unmount('here', 'c1');
});
