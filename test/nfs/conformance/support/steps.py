#!/usr/bin/env python3
"""Runs one list of file-system steps in each of several folders and prints what every step did.

Input (JSON on stdin): {"trees": [folder, ...], "users": {name: {uid, gid, groups}}, "steps": [...]}.
Output (JSON on stdout): one list of results per tree, one result per step. Times are strings of
nanoseconds (JSON numbers would round them).

Started as root. Each step runs with the effective uid, gid and groups of its user (the real uid
stays 0, so the process can switch back); everything observed around a step is read as root. Paths
are relative to the tree, which is the working directory while its steps run, so the same relative
path (and the same path-length limits) applies in every tree. Paths and names cross JSON as text
whose undecodable bytes are lone surrogates (Python's surrogateescape), so any byte string fits.
"""
import ctypes
import errno
import hashlib
import json
import os
import socket
import stat
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
O_TMPFILE = getattr(os, 'O_TMPFILE', 0o20200000)


class Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


KINDS = {
    stat.S_IFREG: 'reg', stat.S_IFDIR: 'dir', stat.S_IFLNK: 'symlink', stat.S_IFIFO: 'fifo',
    stat.S_IFSOCK: 'sock', stat.S_IFCHR: 'chr', stat.S_IFBLK: 'blk',
}
MKNOD_TYPES = {'reg': stat.S_IFREG, 'fifo': stat.S_IFIFO, 'sock': stat.S_IFSOCK, 'chr': stat.S_IFCHR, 'blk': stat.S_IFBLK}
FLAGS = {name: getattr(os, name) for name in (
    'O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_CREAT', 'O_EXCL', 'O_TRUNC', 'O_APPEND', 'O_NONBLOCK',
    'O_DIRECTORY', 'O_NOFOLLOW', 'O_NOATIME', 'O_SYNC', 'O_PATH')}
FLAGS['O_TMPFILE'] = O_TMPFILE


def b(path):
    return os.fsencode(path)


def check(ret):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def timespec(spec):
    if spec == 'now':
        return Timespec(0, UTIME_NOW)
    if spec == 'omit':
        return Timespec(0, UTIME_OMIT)
    return Timespec(int(spec[0]), int(spec[1]))


def utimensat(path, atime, mtime, follow, null):
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    if null:
        check(libc.utimensat(AT_FDCWD, b(path), None, flags))
    else:
        times = (Timespec * 2)(timespec(atime), timespec(mtime))
        check(libc.utimensat(AT_FDCWD, b(path), times, flags))


def renameat2(src, dst, flags):
    check(libc.renameat2(AT_FDCWD, b(src), AT_FDCWD, b(dst), ctypes.c_uint(flags)))


def data_of(raw):
    """Small contents as text (hex when not ASCII), large ones as length and hash."""
    if len(raw) <= 64:
        try:
            text = raw.decode('ascii')
            if text.isprintable():
                return text
        except UnicodeDecodeError:
            pass
        return 'hex:' + raw.hex()
    return 'len=%d sha256=%s' % (len(raw), hashlib.sha256(raw).hexdigest()[:16])


def summary(path):
    """What a path is, read as root without following a final symlink."""
    try:
        st = os.lstat(b(path))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    kind = KINDS.get(stat.S_IFMT(st.st_mode), 'other')
    out = {'type': kind, 'mode': '%04o' % stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid,
           'nlink': st.st_nlink, 'ino': st.st_ino,
           'atime': str(st.st_atime_ns), 'mtime': str(st.st_mtime_ns), 'ctime': str(st.st_ctime_ns)}
    if kind in ('reg', 'symlink'):
        out['size'] = st.st_size
    if kind in ('chr', 'blk'):
        out['rdev'] = '%d,%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    if kind == 'reg':
        try:
            with open(b(path), 'rb') as f:
                out['data'] = data_of(f.read())
        except OSError as e:
            out['data'] = errno.errorcode.get(e.errno, str(e.errno))
    if kind == 'symlink':
        out['target'] = os.fsdecode(os.readlink(b(path)))
    return out


def times_of(path):
    try:
        st = os.lstat(b(path))
        return [str(st.st_atime_ns), str(st.st_mtime_ns), str(st.st_ctime_ns), st.st_ino]
    except OSError:
        return None


class Tree:
    def __init__(self):
        self.fds = {}
        self.socks = []

    def close_all(self):
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        for s in self.socks:
            s.close()
        self.fds.clear()
        self.socks.clear()

    def run(self, op, a):
        """Carries out one step; returns a value to report, or None."""
        if op == 'mkdir':
            os.mkdir(b(a['path']), a.get('mode', 0o777))
        elif op == 'open':
            flags = 0
            for name in a['flags']:
                flags |= FLAGS[name]
            fd = os.open(b(a['path']), flags, a.get('mode', 0o666))
            if 'write' in a:
                os.write(fd, a['write'].encode())
            if a.get('fd'):
                self.fds[a['fd']] = fd
            else:
                os.close(fd)
        elif op == 'write':
            data = a['data'].encode()
            if 'offset' in a:
                return os.pwrite(self.fds[a['fd']], data, a['offset'])
            return os.write(self.fds[a['fd']], data)
        elif op == 'pread':
            return data_of(os.pread(self.fds[a['fd']], a.get('size', 4096), a.get('offset', 0)))
        elif op == 'fstat':
            st = os.fstat(self.fds[a['fd']])
            return {'nlink': st.st_nlink, 'size': st.st_size, 'mode': '%04o' % stat.S_IMODE(st.st_mode)}
        elif op == 'ftruncate':
            os.ftruncate(self.fds[a['fd']], a['size'])
        elif op == 'fchmod':
            os.fchmod(self.fds[a['fd']], a['mode'])
        elif op == 'fsync':
            os.fsync(self.fds[a['fd']])
        elif op == 'close':
            os.close(self.fds.pop(a['fd']))
        elif op == 'read':
            fd = os.open(b(a['path']), os.O_RDONLY | os.O_NONBLOCK)
            try:
                return data_of(os.read(fd, 1 << 20))
            finally:
                os.close(fd)
        elif op == 'symlink':
            os.symlink(b(a['target']), b(a['path']))
        elif op == 'mkfifo':
            os.mkfifo(b(a['path']), a.get('mode', 0o666))
        elif op == 'mknod':
            os.mknod(b(a['path']), a.get('mode', 0o666) | MKNOD_TYPES[a['type']], os.makedev(a.get('major', 0), a.get('minor', 0)))
        elif op == 'bind':
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.bind(b(a['path']))
            finally:
                s.close()
        elif op == 'socket-talk':
            # A listener bound on the path, a client connecting by the path, one message across.
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socks.append(srv)
            srv.bind(b(a['path']))
            srv.listen(1)
            cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socks.append(cli)
            cli.connect(b(a['path']))
            conn, _ = srv.accept()
            self.socks.append(conn)
            cli.sendall(b'ping')
            return conn.recv(16).decode()
        elif op == 'fifo-talk':
            fd = os.open(b(a['path']), os.O_RDWR | os.O_NONBLOCK)
            try:
                os.write(fd, b'through the pipe')
                return os.read(fd, 64).decode()
            finally:
                os.close(fd)
        elif op == 'link':
            os.link(b(a['src']), b(a['dst']), follow_symlinks=a.get('follow', False))
        elif op == 'rename':
            flags = {'noreplace': RENAME_NOREPLACE, 'exchange': RENAME_EXCHANGE}.get(a.get('flags'), 0)
            if flags:
                renameat2(a['src'], a['dst'], flags)
            else:
                os.rename(b(a['src']), b(a['dst']))
        elif op == 'unlink':
            os.unlink(b(a['path']))
        elif op == 'rmdir':
            os.rmdir(b(a['path']))
        elif op == 'truncate':
            os.truncate(b(a['path']), a['size'])
        elif op == 'chmod':
            os.chmod(b(a['path']), a['mode'])
        elif op == 'chown':
            os.chown(b(a['path']), a['uid'], a['gid'], follow_symlinks=a.get('follow', False))
        elif op == 'utimens':
            utimensat(a['path'], a.get('atime'), a.get('mtime'), a.get('follow', False), a.get('null', False))
        elif op == 'access':
            mode = {'r': os.R_OK, 'w': os.W_OK, 'x': os.X_OK, 'f': os.F_OK}[a['mode']]
            return os.access(b(a['path']), mode, effective_ids=True)
        elif op == 'stat':
            st = os.stat(b(a['path'])) if a.get('follow', True) else os.lstat(b(a['path']))
            return KINDS.get(stat.S_IFMT(st.st_mode), 'other')
        elif op == 'list':
            return sorted(os.fsdecode(n) for n in os.listdir(b(a['path'])))
        elif op == 'readlink':
            return os.fsdecode(os.readlink(b(a['path'])))
        elif op == 'sleep':
            time.sleep(a['ms'] / 1000)
        else:
            raise ValueError('unknown step ' + op)
        return None


def become(user):
    os.setgroups(user['groups'])
    os.setegid(user['gid'])
    os.seteuid(user['uid'])


def back_to_root():
    os.seteuid(0)
    os.setegid(0)
    os.setgroups([])


def run_tree(root, users, steps):
    os.chdir(root)
    tree = Tree()
    results = []
    try:
        for step in steps:
            observe = step.get('observe', [])
            before = {p: times_of(p) for p in observe}
            become(users[step['user']])
            t0 = time.time_ns()
            try:
                value = tree.run(step['op'], step.get('args', {}))
                res = {'r': 'ok'}
                if value is not None:
                    res['v'] = value
            except OSError as e:
                res = {'r': errno.errorcode.get(e.errno) or 'OSError: %s' % e}
            except Exception as e:  # a bug in a step, reported in place
                res = {'r': 'EXCEPTION %s: %s' % (type(e).__name__, e)}
            t1 = time.time_ns()
            back_to_root()
            res['t'] = [str(t0), str(t1)]
            if observe:
                res['before'] = before
                res['obs'] = {p: summary(p) for p in observe}
            results.append(res)
    finally:
        back_to_root()
        tree.close_all()
    return results


def main():
    job = json.load(sys.stdin)
    os.umask(job.get('umask', 0o022))
    out = [run_tree(root, job['users'], job['steps']) for root in job['trees']]
    json.dump(out, sys.stdout)


main()
