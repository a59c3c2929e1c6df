// ONC RPC v2 messages (RFC 5531 §9): call headers, AUTH_NONE / AUTH_SYS
// credentials, and reply decoding into either the result body or an error.

import * as os from 'node:os';
import { XdrReader, XdrWriter } from './xdr';
import { RpcError } from './errors';

export const AUTH_NONE = 0;
export const AUTH_SYS = 1;

const MSG_CALL = 0;
const MSG_REPLY = 1;
const MSG_ACCEPTED = 0;
const MSG_DENIED = 1;

export interface AuthSysParams {
  uid: number;
  gid: number;
  /** Supplementary groups; at most 16 are sent (the protocol limit). */
  gids?: readonly number[];
  /** Defaults to the local host name, cut to 255 bytes. */
  machineName?: string;
}

/** An encoded opaque_auth: flavor followed by the opaque body. */
export type EncodedAuth = Buffer;

export function authNone(): EncodedAuth {
  return new XdrWriter(8).uint32(AUTH_NONE).uint32(0).toBuffer();
}

export function authSys(p: AuthSysParams): EncodedAuth {
  const gids = p.gids ?? [];
  if (gids.length > 16) throw new RangeError(`AUTH_SYS allows at most 16 supplementary groups, got ${gids.length}`);
  const machine = Buffer.from(p.machineName ?? os.hostname(), 'utf8').subarray(0, 255);
  const body = new XdrWriter(64);
  body.uint32(Math.floor(Date.now() / 1000) >>> 0);
  body.opaque(machine);
  body.uint32(p.uid);
  body.uint32(p.gid);
  body.uint32(gids.length);
  for (const g of gids) body.uint32(g);
  const bodyBuf = body.toBuffer();
  if (bodyBuf.length > 400) throw new RangeError('AUTH_SYS credential exceeds 400 bytes');
  return new XdrWriter(bodyBuf.length + 8).uint32(AUTH_SYS).opaque(bodyBuf).toBuffer();
}

const VERF_NONE = authNone();

/**
 * Starts a record: 4 reserved bytes for the record mark, then the call header.
 * The caller appends the procedure's arguments.
 */
export function writeCallHeader(
  w: XdrWriter,
  xid: number,
  prog: number,
  vers: number,
  proc: number,
  cred: EncodedAuth,
): void {
  w.uint32(0); // record mark, filled in when sent
  w.uint32(xid);
  w.uint32(MSG_CALL);
  w.uint32(2);
  w.uint32(prog);
  w.uint32(vers);
  w.uint32(proc);
  w.fixedOpaque(cred);
  w.fixedOpaque(VERF_NONE);
}

const ACCEPT_ERRORS: Record<number, [string, string]> = {
  1: ['EPROGUNAVAIL', 'program unavailable'],
  2: ['EPROGMISMATCH', 'program version mismatch'],
  3: ['EPROCUNAVAIL', 'procedure unavailable'],
  4: ['EGARBAGEARGS', 'server could not decode the arguments'],
  5: ['ESYSTEMERR', 'server system error'],
};

const AUTH_ERRORS: Record<number, string> = {
  1: 'bad credential (seal broken)',
  2: 'client must begin new session',
  3: 'bad verifier (seal broken)',
  4: 'verifier expired or replayed',
  5: 'rejected for security reasons',
  6: 'bogus credential',
  7: 'bogus verifier',
};

/**
 * Decodes a reply record. Returns a reader positioned at the results when the
 * call was accepted and succeeded; throws RpcError otherwise.
 */
export function decodeReply(record: Buffer, procedure: string, release?: () => void): XdrReader {
  const r = new XdrReader(record, 0, release);
  r.uint32(); // xid, matched by the caller
  const type = r.uint32();
  if (type !== MSG_REPLY) throw new RpcError('EPROTO', `expected an RPC reply, got message type ${type}`, { procedure });
  const stat = r.uint32();
  if (stat === MSG_ACCEPTED) {
    r.uint32(); // verifier flavor
    r.opaque(400); // verifier body
    const accept = r.uint32();
    if (accept === 0) return r;
    const [code, text] = ACCEPT_ERRORS[accept] ?? ['EPROTO', `accept status ${accept}`];
    let extra = '';
    if (accept === 2) extra = ` (server supports versions ${r.uint32()}..${r.uint32()})`;
    throw new RpcError(code, `${procedure}: ${text}${extra}`, { procedure });
  }
  if (stat === MSG_DENIED) {
    const reject = r.uint32();
    if (reject === 0) {
      throw new RpcError('ERPCMISMATCH', `${procedure}: RPC version mismatch (server supports ${r.uint32()}..${r.uint32()})`, {
        procedure,
      });
    }
    const authStat = r.uint32();
    throw new RpcError('EAUTH', `${procedure}: authentication failed: ${AUTH_ERRORS[authStat] ?? `status ${authStat}`}`, {
      procedure,
    });
  }
  throw new RpcError('EPROTO', `${procedure}: unknown reply status ${stat}`, { procedure });
}
