// Portmapper version 2 (RFC 1833 §3): find the TCP port of an RPC program.

import { RpcClient } from './rpc-client';
import { XdrReader, XdrWriter } from './xdr';

export const PMAP_PROGRAM = 100000;
export const PMAP_VERSION = 2;
export const PMAP_PORT = 111;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

const PROC_SET = 1;
const PROC_UNSET = 2;
const PROC_GETPORT = 3;
const PROC_DUMP = 4;

export interface PortMapping {
  program: number;
  version: number;
  /** IPPROTO_TCP (6) or IPPROTO_UDP (17). */
  protocol: number;
  port: number;
}

function writeMapping(w: XdrWriter, m: PortMapping): void {
  w.uint32(m.program).uint32(m.version).uint32(m.protocol).uint32(m.port);
}

/** The registered port of a program version, or 0 when it is not registered. */
export async function pmapGetPort(rpc: RpcClient, program: number, version: number, protocol = IPPROTO_TCP): Promise<number> {
  const r = await rpc.call(PMAP_PROGRAM, PMAP_VERSION, PROC_GETPORT, (w) =>
    writeMapping(w, { program, version, protocol, port: 0 }),
  { name: 'PMAP.GETPORT' });
  return r.uint32();
}

/** Registers a mapping; resolves false when the portmapper refuses it. */
export async function pmapSet(rpc: RpcClient, m: PortMapping): Promise<boolean> {
  const r = await rpc.call(PMAP_PROGRAM, PMAP_VERSION, PROC_SET, (w) => writeMapping(w, m), { name: 'PMAP.SET' });
  return r.bool();
}

/** Removes every mapping of a program version. */
export async function pmapUnset(rpc: RpcClient, program: number, version: number): Promise<boolean> {
  const r = await rpc.call(PMAP_PROGRAM, PMAP_VERSION, PROC_UNSET, (w) =>
    writeMapping(w, { program, version, protocol: 0, port: 0 }),
  { name: 'PMAP.UNSET' });
  return r.bool();
}

export async function pmapDump(rpc: RpcClient): Promise<PortMapping[]> {
  const r = await rpc.call(PMAP_PROGRAM, PMAP_VERSION, PROC_DUMP, undefined, { name: 'PMAP.DUMP' });
  const out: PortMapping[] = [];
  while (r.bool()) out.push(readMapping(r));
  return out;
}

function readMapping(r: XdrReader): PortMapping {
  return { program: r.uint32(), version: r.uint32(), protocol: r.uint32(), port: r.uint32() };
}

export interface PortLookupOptions {
  host: string;
  /** Portmapper port; default 111. */
  portmapPort?: number;
  timeoutMs?: number;
  connectTimeoutMs?: number;
}

/** Opens a short connection to the portmapper and asks for one TCP port. */
export async function lookupPort(opts: PortLookupOptions, program: number, version: number): Promise<number> {
  const rpc = await RpcClient.connect({
    host: opts.host,
    port: opts.portmapPort ?? PMAP_PORT,
    timeoutMs: opts.timeoutMs,
    connectTimeoutMs: opts.connectTimeoutMs,
  });
  try {
    return await pmapGetPort(rpc, program, version, IPPROTO_TCP);
  } finally {
    rpc.close();
  }
}
