/**
 * A builder for one group's case table: each case gets its own short folder name, and the group's
 * own top folder is made first.
 */
import { Case, FileType, make, Step, UserName } from './sweep';

export class Cases {
  readonly list: Case[] = [];
  private n = 0;

  constructor(readonly top: string, mode = 0o755) {
    this.list.push({ op: 'group folder', user: 'root', type: 'dir', setup: make(top, 'dir', { mode }), steps: [] });
  }

  /** A fresh path under the group's folder. */
  fresh(prefix = 'c'): string {
    return `${this.top}/${prefix}${this.n++}`;
  }

  add(op: string, user: UserName, type: FileType | string, setup: Step[], steps: Step[]): void {
    this.list.push({ op, user, type, setup, steps });
  }
}

/** The step that makes a new file of a type as a user (what "create" means for each type). */
export function create(user: UserName, p: string, type: FileType, mode?: number): Step {
  switch (type) {
    case 'reg':
      return { user, op: 'open', args: { path: p, flags: ['O_WRONLY', 'O_CREAT', 'O_EXCL'], mode: mode ?? 0o666 } };
    case 'dir':
      return { user, op: 'mkdir', args: { path: p, mode: mode ?? 0o777 } };
    case 'symlink':
      return { user, op: 'symlink', args: { path: p, target: 'somewhere/else' } };
    case 'fifo':
      return { user, op: 'mkfifo', args: { path: p, mode: mode ?? 0o666 } };
    case 'sock':
      return { user, op: 'bind', args: { path: p } };
    case 'chr':
      return { user, op: 'mknod', args: { path: p, type: 'chr', mode: mode ?? 0o666, major: 1, minor: 3 } };
    case 'blk':
      return { user, op: 'mknod', args: { path: p, type: 'blk', mode: mode ?? 0o666, major: 7, minor: 200 } };
  }
}

/** The step that removes a file of a type (rmdir for a folder, unlink otherwise). */
export function remove(user: UserName, p: string, type: FileType, observe: string[] = []): Step {
  return { user, op: type === 'dir' ? 'rmdir' : 'unlink', args: { path: p }, observe };
}

export const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/'));
