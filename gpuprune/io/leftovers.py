"""What a run leaves beside its output while it runs, and the removal of what a killed run left.

A run holds an exclusive lock on each temporary it makes (the ``.part`` output file, the workers'
parts folder) for as long as it lives; the kernel drops the lock when the process dies, even by
``kill -9``.  The next run on the same folder removes the temporaries that nobody holds, and never
one that a live run holds.  Creating a temporary and locking it are two steps, so both happen while
the run holds a lock on the folder itself (:func:`folder_lock`), which the sweep takes too.

The locking is hand-written here (no library locks a file that HDF5 has open, or a folder): on a
system without ``fcntl`` (Windows) nothing is locked and nothing is swept.
"""

import contextlib
import errno
import glob
import logging
import os
import shutil
import struct
import tempfile

from gpuprune.errors import OutputError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

log = logging.getLogger("gpuprune")

#: what runs leave in an output folder: the output written under a temporary name
#: (:class:`gpuprune.io.writer.OutputWriter`) and the workers' part files (LocalPool)
PATTERNS = (".network-synapses-*.hdf5.part", ".gpuprune-parts-*")


def _try_lock(path, blocking=False):
    """An fd of ``path`` (a file or folder) holding an exclusive lock, or None if another process holds it.

    Files get an open-file-description record lock (Linux ``F_OFD_SETLK``), not ``flock``: HDF5 itself
    locks (``flock``) a file it writes, which would refuse ours, and releases it on close, before the
    rename.  OFD locks and ``flock`` do not interact, and unlike POSIX record locks an OFD lock is
    not dropped when another fd of the file is closed.  Folders (which only gpuprune locks) get ``flock``.
    """
    if fcntl is None:
        return None
    ofd = not os.path.isdir(path) and hasattr(fcntl, "F_OFD_SETLK")
    fd = os.open(path, (os.O_RDWR if ofd else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0))
    try:
        if ofd:
            request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)  # struct flock: whole file
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if blocking else fcntl.F_OFD_SETLK, request)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    except BaseException:
        os.close(fd)
        raise
    return fd


class Held:
    """The locks this run holds on its temporaries (released by :meth:`release`, or by its death)."""

    def __init__(self):
        self.fds = []

    def hold(self, path):
        """Lock ``path`` for as long as this run lives."""
        if fcntl is not None:
            fd = _try_lock(path)
            if fd is not None:
                self.fds.append(fd)

    def release(self):
        while self.fds:
            os.close(self.fds.pop())


@contextlib.contextmanager
def folder_lock(folder):
    """Hold an exclusive lock on ``folder`` (briefly: while temporaries are made and locked, or swept)."""
    fd = _try_lock(folder, blocking=True) if fcntl is not None and os.path.isdir(folder) else None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def sweep(folder):
    """Remove what killed runs left in ``folder``; returns the paths removed.  Call under :func:`folder_lock`."""
    removed = []
    if fcntl is None:
        return removed
    for pattern in PATTERNS:
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), pattern))):
            try:
                fd = _try_lock(path)
            except OSError:  # gone meanwhile, or not ours to open
                continue
            if fd is None:  # a live run holds it
                continue
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
                removed.append(path)
            except OSError:
                pass
            finally:
                os.close(fd)
    if removed:
        log.warning("removed %d leftover(s) of an earlier run that was killed: %s", len(removed),
                    ", ".join(os.path.basename(p) for p in removed))
    return removed


def check_output(output_file):
    """Refuse, before any work, an output that cannot be written: a directory, a missing folder, a
    folder this process cannot create files in."""
    if os.path.isdir(output_file):
        raise OutputError("the output is an existing directory; give a file name (e.g. "
                          f"{os.path.join(output_file, 'network-synapses.hdf5')})", output_file)
    folder = os.path.dirname(output_file)
    if not os.path.isdir(folder):
        raise OutputError("output directory does not exist", folder)
    try:  # os.access says yes to root on a read-only file system; creating a file is the real test
        fd, probe = tempfile.mkstemp(prefix=".gpuprune-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot create files in the output folder: {os.strerror(exc.errno or 0)}",
                          folder) from None
    os.close(fd)
    os.remove(probe)


def same_file(path, inode):
    """Whether ``path`` is the file whose inode is ``inode`` (e.g. a temporary since renamed to it)."""
    try:
        return inode is not None and os.stat(path).st_ino == inode
    except OSError:
        return False
