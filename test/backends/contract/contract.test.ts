/**
 * The Backend contract, run against every backend type: a new backend type gets these tests by
 * adding its subject (subjects/<type>.ts) to this list.
 */
import { backendContract } from './cases';
import { localSubject } from './subjects/local';
import { nfsSubject } from './subjects/nfs';
import { sftpSubject } from './subjects/sftp';

for (const subject of [localSubject(), sftpSubject(), nfsSubject()]) backendContract(subject);
