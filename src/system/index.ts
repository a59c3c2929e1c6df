export { run, spawnDetached, KILL_GRACE_MS, onCommand, logCommandsTo, commandStarted, firstStderrLine, CommandFailedError, ExecOptions, ExecResult, CommandEvent } from './exec';
export { readMountTable, findMount, isMounted, bindMount, unmount, fsUsage, MountEntry, FsUsage } from './mounts';
export { withTimeout, withinRequest, RequestDeadline, runWithin, requestDeadline, noteRequestBackend, outsideRequest, abortion } from './timeout';
export { isAlive, waitForExit } from './processes';
export { tcpConnectionsOf, resetConnections, unixPeersOf, cutOff, TcpConnection } from './sockets';
export { abortFuseConnection, cutOffFuseMount } from './fusectl';
export { CoalescedWriter } from './coalesced';
export { listenOnSocket, SocketServer } from './unix-server';
export { PeerFile, describeOwnFile, parsePeerFile, openPeerFile, ioCounters } from './peer-files';
