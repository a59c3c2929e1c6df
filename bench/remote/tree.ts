/**
 * A tar of many small files, made once per run, for the metadata benchmark: unpacking it creates
 * one file per entry (create, write, close), which is what a package install or a source checkout
 * does to a volume.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { timed } from './proc';

export interface SmallTree {
  tar: string;
  files: number;
  dirs: number;
  bytesPerFile: number;
}

/** `files` files of `bytesPerFile` random bytes in folders of 100, packed into `dir`/tree.tar. */
export async function makeSmallTree(dir: string, files: number, bytesPerFile = 1024): Promise<SmallTree> {
  const src = path.join(dir, 'tree');
  const perDir = 100;
  const dirs = Math.ceil(files / perDir);
  for (let d = 0; d < dirs; d++) {
    const sub = path.join(src, `d${String(d).padStart(3, '0')}`);
    fs.mkdirSync(sub, { recursive: true });
    for (let f = d * perDir; f < Math.min(files, (d + 1) * perDir); f++) {
      fs.writeFileSync(path.join(sub, `f${String(f).padStart(5, '0')}.txt`), crypto.randomBytes(bytesPerFile));
    }
  }
  const tar = path.join(dir, 'tree.tar');
  await timed('tar', ['-C', src, '-cf', tar, '.']);
  fs.rmSync(src, { recursive: true, force: true });
  return { tar, files, dirs, bytesPerFile };
}

/** Unpacks the tree into `dest` (created), then flushes that filesystem (`sync -f`); resolves with files created per second. */
export async function unpackRate(tree: SmallTree, dest: string): Promise<number> {
  fs.mkdirSync(dest, { recursive: true });
  const t = process.hrtime.bigint();
  await timed('tar', ['-C', dest, '-xf', tree.tar]);
  await timed('sync', ['-f', dest]);
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  return tree.files / (ms / 1000);
}
