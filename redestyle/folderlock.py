"""One run per output folder: a lock file held for the whole run (layer 1).

``align``, ``destylize`` and ``train`` write into an output folder and resume from what is
there. Two runs on one folder at once would both process every input and overwrite each
other's files (issue 15: one run was told its codes were written while the other's replaced
them). :func:`lock_folder` takes an exclusive ``flock`` on ``<folder>/.redestyle.lock`` for the
run; a second run is refused at once with :class:`FolderInUseError` naming the folder and the
holder's PID.

Why ``flock`` and not a PID file alone: the kernel drops the lock when its holder dies, even
by ``kill -9``, so a stale lock file of a dead process never blocks a later run (its PID is
simply overwritten), and no liveness guess (PID reuse) is needed. The file is removed on a
normal exit; a taker checks that the file it locked is still the one at the path, so removing
it cannot let two runs in.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".redestyle.lock"


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock; ``folder`` and ``pid`` (None if unknown) say which."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.folder, self.pid = folder, pid
        holder = f"PID {pid}" if pid is not None else "a process that has not written its PID yet"
        super().__init__(f"{folder}: output folder in use by another redestyle run ({holder}); "
                         "wait for it to finish or choose another output folder")


def _holder(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the body; yields the lock file's path.

    Raises:
        FolderInUseError: another live process holds it (no waiting: a second run is refused).
        OSError: the folder cannot be created or written (named by the error's ``filename``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as err:  # name the folder the user chose, not our lock file
            raise PermissionError(err.errno, "output folder is not writable", str(folder)) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise FolderInUseError(folder, pid) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us may have removed the file between our open and our flock: then we
        # locked an orphan inode, and a third run could lock a new file. Retry on the path's file.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked: no one can lock this inode and keep it
        os.close(fd)
