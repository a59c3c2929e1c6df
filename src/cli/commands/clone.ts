import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { CloneProgress, CloneResult } from '../../driver';
import { CliError, readJson } from '../client';
import { printJson, size, table } from '../output';
import { AdminOptions, clientFor, withAdminOptions } from './common';

const METHOD_TEXT: Record<CloneResult['method'], string> = {
  reflink: 'reflink on the backend (constant time)',
  'server copy': 'copied on the server',
  'streamed image': 'image streamed through this host',
  'streamed files': 'files streamed through this host',
};

/** `-o key=value`, repeatable, as for docker volume create. */
function collectOption(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new CliError(`-o ${value}: options are key=value, e.g. -o size=20G`);
  const key = value.slice(0, eq).trim();
  if (key === 'from') throw new CliError('-o from=… is not needed here: the source is the first argument');
  return { ...previous, [key]: value.slice(eq + 1) };
}

/** `netvolctl clone SRC DST`: through the daemon, with a progress bar on a terminal. */
export function cloneCommands(program: Command): void {
  withAdminOptions(
    program
      .command('clone')
      .description('make DST a new, independent volume with the content and options of SRC (as docker volume create -o from=SRC DST, without Docker\'s 120 s limit)')
      .argument('<src>', 'the volume to copy')
      .argument('<dst>', 'the new volume')
      .option('-o, --opt <key=value>', 'an option of the clone: size (grow only), backend, uid, gid, mode, onRemove; repeatable', collectOption, {})
      .option('--consistent', 'freeze an in-use image volume for the whole copy when no constant-time copy (reflink) is possible, instead of copying its live files')
      .option('--json', 'print the result as JSON'),
  ).action(async (src: string, dst: string, opts: AdminOptions & { opt: Record<string, string>; consistent?: boolean }) => {
    const client = await clientFor(opts);
    const payload = Buffer.from(JSON.stringify({ source: src, opts: opts.opt, consistent: opts.consistent === true }));
    const { req, res } = client.open('POST', `/v1/volumes/${encodeURIComponent(dst)}/clone`, { 'content-type': 'application/json', 'content-length': String(payload.length) });
    req.end(payload);
    const answer = await res;
    if (!/ndjson/.test(String(answer.headers['content-type'] ?? ''))) {
      await readJson(answer); // a failure before the copy began: throws the daemon's sentence
      throw new CliError(`the netvol daemon answered the clone of ${src} without a result; is netvolctl newer than the daemon?`);
    }
    const bar = process.stderr.isTTY && !opts.json ? new SingleBar({ format: 'cloning {bar} {percentage}% | {done} of {total} | {eta_formatted} left', hideCursor: true }, undefined) : undefined;
    let result: CloneResult | undefined;
    let started = false;
    let buffered = '';
    try {
      for await (const chunk of answer) {
        buffered += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const text = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!text.trim()) continue;
          const message = JSON.parse(text) as { progress?: CloneProgress; result?: CloneResult; error?: string; code?: string };
          if (message.error) throw new CliError(message.error, message.code);
          if (message.result) result = message.result;
          if (message.progress && bar) {
            const { doneBytes, totalBytes } = message.progress;
            if (!started) {
              bar.start(Math.max(totalBytes, 1), doneBytes, { done: size(doneBytes), total: size(totalBytes) });
              started = true;
            } else if (bar.getTotal() !== Math.max(totalBytes, 1)) bar.setTotal(Math.max(totalBytes, 1));
            bar.update(doneBytes, { done: size(doneBytes), total: size(totalBytes) });
          }
        }
      }
    } finally {
      bar?.stop();
    }
    if (!result) throw new CliError(`the netvol daemon ended the clone of ${src} to ${dst} without saying how it went: see the daemon's log, and \`netvolctl inspect ${dst}\``);
    if (opts.json) return printJson(result);
    const rows: Array<[string, string]> = [
      ['volume', result.name],
      ['cloned from', result.source],
      ['backend', result.backend],
      ['layout', result.layout],
      ['size', size(result.sizeBytes)],
      ['copy', result.existed ? 'none (the clone existed already)' : METHOD_TEXT[result.method]],
      ['point in time', result.pointInTime ? 'yes' : 'no'],
      ['took', `${(result.durationMs / 1000).toFixed(1)} s`],
    ];
    process.stdout.write(table(['FIELD', 'VALUE'], rows));
    if (result.note) process.stderr.write(`note: ${result.note}\n`);
  });
}
