import net from 'node:net';
import { NetvolError } from '../errors';

export interface ListenAddress {
  host: string;
  port: number;
  /** As written in the config, for messages. */
  text: string;
}

/**
 * `metrics.listen` as an address to bind: an IP address (IPv6 in brackets) and a port from 1 to
 * 65535. A host name is refused: it may resolve to more addresses than meant, or to others later.
 */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const bad = (why: string) =>
    new NetvolError('CONFIG', `invalid configuration: metrics.listen "${text}": ${why}; use an IP address and a port, e.g. 127.0.0.1:9911 (or [::1]:9911)`);
  if (!m) throw bad('it is not host:port');
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (m[1] !== undefined ? net.isIPv6(host) === false : net.isIPv4(host) === false) {
    throw bad(m[1] === undefined && net.isIPv6(host) ? 'an IPv6 address goes in brackets' : `"${host}" is not an IP address (host names are refused: they may resolve to addresses you did not mean to expose)`);
  }
  if (port < 1 || port > 65535) throw bad(`port ${port} is outside 1-65535`);
  return { host, port, text };
}

/** The sentence for a failed bind, by errno: what is wrong and what to do. */
export function listenFailure(address: ListenAddress, err: NodeJS.ErrnoException): NetvolError {
  const why =
    err.code === 'EADDRINUSE'
      ? 'the port is already in use by another process; choose a free port'
      : err.code === 'EADDRNOTAVAIL'
        ? `${address.host} is not an address of this host; use one of its addresses, e.g. 127.0.0.1`
        : err.code === 'EACCES'
          ? 'permission denied (ports below 1024 need root)'
          : `${err.code ?? 'error'}: ${err.message}`;
  return new NetvolError('CONFIG', `cannot serve metrics on metrics.listen ${address.text}: ${why}, or remove metrics from the config`);
}
