#!/usr/bin/env node
import { Command } from 'commander';
import { isNetvolError } from '../errors';
import { CliError } from './client';
import { cloneCommands } from './commands/clone';
import { gcCommands } from './commands/gc';
import { backupCommands } from './commands/backup';
import { localCommands } from './commands/local';
import { resizeCommands } from './commands/resize';
import { volumeCommands } from './commands/volumes';

/**
 * netvolctl: the ops CLI. Commands that change volumes (and `ls`, `inspect`) ask the running daemon
 * over its admin socket, since it owns the locks, the state and the leases; `check-config`,
 * `state` and `hosts` read files and backends directly. Each group of commands is one file in
 * commands/.
 */
async function main(argv: string[]): Promise<void> {
  const program = new Command().name('netvolctl').description('operate netvol: list, inspect, back up, restore, clone, resize and clean up volumes');
  for (const register of [volumeCommands, backupCommands, cloneCommands, resizeCommands, gcCommands, localCommands]) register(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  const known = isNetvolError(err) || err instanceof CliError;
  process.stderr.write(`netvolctl: ${known ? (err as Error).message : `unexpected error: ${(err as Error)?.message ?? String(err)}`}\n`);
  process.exit(1);
});
