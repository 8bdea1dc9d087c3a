"""An exclusive, non-blocking lock on a folder, on POSIX and on Windows.

The lock is held on a file handle, so the operating system releases it when the process
ends in any way (including ``kill -9`` or a crash): a lock never outlives its holder, and
no stale lock file needs cleaning up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cellsynth.errors import CellsynthError

LOCK_NAME = ".lock"
"""Name of the lock file inside the locked folder."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, busy_message: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` for the duration of the ``with`` block.

    Parameters
    ----------
    folder
        An existing folder; the lock file ``.lock`` is created in it.
    busy_message
        The message of the :class:`~cellsynth.errors.CellsynthError` raised when another
        process holds the lock (say who and what to do).

    Raises
    ------
    CellsynthError
        If the folder is not writable, or another process holds the lock.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder, folder_lock(folder, "busy"):
    ...     pass
    """
    path = Path(folder) / LOCK_NAME
    try:
        handle = open(path, "a+b")
    except OSError as err:
        raise CellsynthError(f"cannot write to {folder}: {err.strerror or err}; choose a writable location") from None
    with handle:
        try:
            _lock(handle)
        except OSError:
            raise CellsynthError(busy_message) from None
        try:
            yield
        finally:
            _unlock(handle)


if os.name == "nt":
    import msvcrt

    def _lock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # one byte, raises OSError when taken

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle) -> None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
