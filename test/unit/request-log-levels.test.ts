import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ErrorCode, NetvolError } from '../../src/errors';
import { createLogger } from '../../src/log';
import { createApp, listenOnSocket, SocketServer, VolumeDriverApi } from '../../src/plugin';
import { post } from './support/http';

/** A driver whose every verb fails with the error the test sets. */
class FailingDriver implements VolumeDriverApi {
  scope: 'local' | 'global' = 'local';
  failure: unknown = new Error('unset');
  private fail(): never {
    throw this.failure;
  }
  async create() {
    this.fail();
  }
  async remove() {
    this.fail();
  }
  async mount(): Promise<string> {
    this.fail();
  }
  async unmount() {
    this.fail();
  }
  async path(): Promise<string> {
    this.fail();
  }
  async get(): Promise<never> {
    this.fail();
  }
  async list(): Promise<never> {
    this.fail();
  }
}

describe("the level of a failed request's log line follows what the failure means", () => {
  let dir: string;
  let sock: string;
  let server: SocketServer;
  const driver = new FailingDriver();
  const records: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-levels-'));
    sock = path.join(dir, 'netvol.sock');
    const stream = new Writable({
      write(chunk: Buffer, _e, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    server = await listenOnSocket(sock, createApp(driver, createLogger('debug', stream)));
  });

  afterAll(async () => {
    await server.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** The level the `request failed` line of one request was logged at. */
  async function levelOf(route: string, failure: unknown): Promise<unknown> {
    driver.failure = failure;
    records.length = 0;
    const a = await post(sock, `/VolumeDriver.${route}`, '{"Name":"probe","ID":"m1"}');
    expect(a.status).toBe(500);
    await new Promise((r) => setImmediate(r));
    const lines = records.filter((r) => r.message === 'request failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ op: `VolumeDriver.${route}`, volume: 'probe' });
    return lines[0].level;
  }

  const err = (code: ErrorCode): NetvolError => new NetvolError(code, `volume probe: ${code.toLowerCase()} (test)`, { volume: 'probe' });

  it.each(['Get', 'Path'])('a NOT_FOUND answer to %s (dockerd probes every driver before a create) is debug', async (route) => {
    expect(await levelOf(route, err('NOT_FOUND'))).toBe('debug');
  });

  it('a NOT_FOUND answer to Mount (a caller asked for a volume that is not there) is info', async () => {
    expect(await levelOf('Mount', err('NOT_FOUND'))).toBe('info');
  });

  it.each<[string, ErrorCode]>([
    ['Create', 'INVALID_OPTION'],
    ['Create', 'INVALID_NAME'],
    ['Create', 'OPTIONS_CONFLICT'],
    ['Remove', 'IN_USE'],
    ['Mount', 'LEASE_HELD'],
    ['Remove', 'REMOVING'],
  ])('a refusal of bad input or a conflict (%s: %s) is info: netvol works, the caller gets the reason', async (route, code) => {
    expect(await levelOf(route, err(code))).toBe('info');
  });

  it.each<[string, ErrorCode]>([
    ['Get', 'BACKEND_UNAVAILABLE'],
    ['Mount', 'TIMEOUT'],
    ['Create', 'NO_SPACE'],
  ])('a backend that cannot serve now (%s: %s) is warn', async (route, code) => {
    expect(await levelOf(route, err(code))).toBe('warn');
  });

  it.each<[string, ErrorCode]>([
    ['Mount', 'BACKEND_AUTH'],
    ['Create', 'PERMISSION'],
    ['Mount', 'COMMAND_FAILED'],
    ['Unmount', 'INTERNAL'],
  ])('a failure an operator must fix (%s: %s) is error', async (route, code) => {
    expect(await levelOf(route, err(code))).toBe('error');
  });

  it('an unexpected exception is error', async () => {
    expect(await levelOf('Get', new TypeError('boom'))).toBe('error');
  });
});
