import type { Command } from 'commander';
import { AdminClient, resolveSocket } from '../client';

/** The options of every command that asks the daemon: where its admin socket is. */
export interface AdminOptions {
  socket?: string;
  config?: string;
  json?: boolean;
}

/** Adds --socket and --config (to find the admin socket) to a command that talks to the daemon. */
export function withAdminOptions(cmd: Command): Command {
  return cmd
    .option('-s, --socket <path>', 'the daemon\'s admin socket (env NETVOL_ADMIN_SOCKET; default: the adminSocket of the config file, else of /etc/netvol/config.yaml when present, else /var/lib/netvol/admin.sock)')
    .option('-c, --config <file>', 'the daemon\'s config file, to find its admin socket (env NETVOL_CONFIG)');
}

export async function clientFor(opts: AdminOptions): Promise<AdminClient> {
  return new AdminClient(await resolveSocket(opts));
}
