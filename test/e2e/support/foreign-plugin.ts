/**
 * A stand-in for another volume plugin on the same machine (someone's running netvol, or any other
 * driver): a tiny legacy plugin on its own unique socket in /run/docker/plugins that owns a few
 * volumes and counts the calls it gets. Tests use it to prove the harness touches only what it made.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { PLUGIN_DIR } from '../../harness/netvol';

export interface ForeignPlugin {
  readonly name: string;
  readonly socket: string;
  /** The volumes it still holds (Remove takes one away, as a real plugin would). */
  readonly volumes: Set<string>;
  /** Calls by method, e.g. calls['VolumeDriver.Remove']. */
  readonly calls: Record<string, number>;
  /** Names it was asked to Remove, in order. */
  readonly removed: string[];
  close(): Promise<void>;
}

export async function startForeignPlugin(volumes: string[]): Promise<ForeignPlugin> {
  fs.mkdirSync(PLUGIN_DIR, { recursive: true });
  const name = `foreign-e2e-${crypto.randomBytes(4).toString('hex')}`;
  const socket = path.join(PLUGIN_DIR, `${name}.sock`);
  const held = new Set(volumes);
  const calls: Record<string, number> = {};
  const removed: string[] = [];
  const createdAt = new Date().toISOString();
  const info = (v: string) => ({ Name: v, Mountpoint: `/foreign/${v}`, CreatedAt: createdAt, Status: {} });

  const answer = (method: string, body: { Name?: string }): Record<string, unknown> => {
    const v = typeof body.Name === 'string' ? body.Name : '';
    switch (method) {
      case 'Plugin.Activate':
        return { Implements: ['VolumeDriver'] };
      case 'VolumeDriver.Capabilities':
        return { Capabilities: { Scope: 'local' } };
      case 'VolumeDriver.List':
        return { Volumes: [...held].map(info), Err: '' };
      case 'VolumeDriver.Get':
        return held.has(v) ? { Volume: info(v), Err: '' } : { Err: `no such volume: ${v}` };
      case 'VolumeDriver.Remove':
        removed.push(v);
        held.delete(v);
        return { Err: '' };
      case 'VolumeDriver.Path':
      case 'VolumeDriver.Mount':
        return held.has(v) ? { Mountpoint: `/foreign/${v}`, Err: '' } : { Err: `no such volume: ${v}` };
      default:
        return { Err: `the foreign test plugin does not do ${method}` };
    }
  };

  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      const method = (req.url ?? '/').slice(1);
      calls[method] = (calls[method] ?? 0) + 1;
      let body: { Name?: string } = {};
      try {
        body = raw ? (JSON.parse(raw) as { Name?: string }) : {};
      } catch {
        /* dockerd always sends JSON or nothing */
      }
      res.setHeader('Content-Type', 'application/vnd.docker.plugins.v1.2+json');
      res.end(JSON.stringify(answer(method, body)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  const unlink = () => fs.rmSync(socket, { force: true });
  process.on('exit', unlink);

  return {
    name,
    socket,
    volumes: held,
    calls,
    removed,
    async close() {
      process.removeListener('exit', unlink);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      unlink();
    },
  };
}
