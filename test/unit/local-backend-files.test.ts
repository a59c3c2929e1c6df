/** The local backend's createFile/listFiles and its dot-folders, in a temporary folder of this host. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { localBackendType } from '../../src/backends/local/local-backend';
import type { Backend } from '../../src/backends';
import { createLogger } from '../../src/log';

let root: string;
let backend: Backend;

function make(): Backend {
  return localBackendType.create({ path: root }, { name: 'local', hostId: 'host-a', workDir: root, timeoutMs: 5000, logger: createLogger('error') });
}

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'nvlocal-'));
  backend = make();
  await backend.open();
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

test('createFile() creates a file with its data once, and returns false without changing it the second time', async () => {
  await backend.makeFolder('v', false);
  expect(await backend.createFile('v', 'claim.json', Buffer.from('first'))).toBe(true);
  expect(await backend.createFile('v', 'claim.json', Buffer.from('second'))).toBe(false);
  expect(fs.readFileSync(path.join(root, 'v', 'claim.json'), 'utf8')).toBe('first');
});

test('createFile() called by ten backends at once returns true to exactly one, whose data the file holds', async () => {
  await backend.makeFolder('race', false);
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => make().createFile('race', 'lease.json', Buffer.from(`host-${i}`))));
  expect(results.filter(Boolean)).toHaveLength(1);
  expect(fs.readFileSync(path.join(root, 'race', 'lease.json'), 'utf8')).toBe(`host-${results.indexOf(true)}`);
});

test('listFiles() lists the regular files of a folder, without folders or files being written, and [] for a missing folder', async () => {
  await backend.makeFolder('listed', true);
  await backend.writeFile('listed', 'volume.json', Buffer.from('{}'));
  await backend.createFile('listed', 'owner.json', Buffer.from('{}'));
  fs.writeFileSync(path.join(root, 'listed', `volume.json.${process.pid}.tmp`), 'half');
  expect((await backend.listFiles('listed')).sort()).toEqual(['owner.json', 'volume.json']);
  expect(await backend.listFiles('no-such-folder')).toEqual([]);
});

test('listFolders() hides dot-folders such as .netvol-hosts, which still take files like any other folder', async () => {
  await backend.makeFolder('vol', true);
  expect(await backend.makeFolder('.netvol-hosts', false)).toBe(true);
  await backend.writeFile('.netvol-hosts', 'host-a.json', Buffer.from('{"seq":1}'));
  expect(await backend.createFile('.netvol-hosts', 'host-b.json', Buffer.from('{}'))).toBe(true);
  expect((await backend.listFiles('.netvol-hosts')).sort()).toEqual(['host-a.json', 'host-b.json']);
  expect((await backend.readFile('.netvol-hosts', 'host-a.json'))?.toString()).toBe('{"seq":1}');
  expect(await backend.listFolders()).toEqual(['vol']);
});
