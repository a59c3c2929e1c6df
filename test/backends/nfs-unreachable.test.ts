/** The one check, exported by src/nfs, of NFS errors that mean "the server did not answer". */
import { isTransportError, isUnreachableError, NfsClientError, NfsError, RpcError } from '../../src/nfs';

test('isUnreachableError() is true for connection failures, a missing service and a closed client, whatever the error class', () => {
  for (const code of ['ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECLOSED', 'EPROGUNAVAIL', 'EPROGMISMATCH']) {
    expect(isUnreachableError(new RpcError(code, 'x'))).toBe(true);
  }
  expect(isUnreachableError(new NfsClientError('EPROGUNAVAIL', 'MOUNT v3 is not registered with the portmapper'))).toBe(true);
  expect(isUnreachableError(new NfsError(2, 'NFS3.LOOKUP'))).toBe(false);
  expect(isUnreachableError(new RpcError('EAUTH', 'x'))).toBe(false);
  expect(isUnreachableError(undefined)).toBe(false);
});

test('isTransportError() is true only for what is worth sending again: RPC transport failures and JUKEBOX', () => {
  for (const code of ['ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']) expect(isTransportError(new RpcError(code, 'x'))).toBe(true);
  expect(isTransportError(new NfsError(10008, 'NFS3.WRITE'))).toBe(true);
  for (const code of ['ECLOSED', 'EPROGUNAVAIL', 'ENOTFOUND']) expect(isTransportError(new RpcError(code, 'x'))).toBe(false);
  // A plain NfsClientError with a transport code did not come from the RPC layer.
  expect(isTransportError(new NfsClientError('ETIMEDOUT', 'x'))).toBe(false);
  expect(isTransportError(new NfsError(2, 'NFS3.LOOKUP'))).toBe(false);
});
