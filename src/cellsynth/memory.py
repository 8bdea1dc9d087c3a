"""Memory: how much this process may still use, and the one check before a large allocation.

Every command estimates the memory its work needs from its inputs (a volume shape, a ray
count, a sample count, a network size) and calls :func:`check_memory` before allocating,
so an input that cannot fit is refused with one line instead of swapping the machine or
being killed by the kernel. The estimate and the check are kept apart: the module that
allocates knows its bytes per voxel; this module knows what is available.

What is available is the smallest of: the memory the kernel reports as available now
(``MemAvailable``), what the process's own limits (``ulimit -v``, ``ulimit -d``, set with
:func:`resource.setrlimit`) leave, and what its cgroup (container) limit leaves.
"""

from __future__ import annotations

import os
from pathlib import Path

from cellsynth.errors import CellsynthError

try:
    import resource
except ImportError:  # not on POSIX
    resource = None  # type: ignore[assignment]


UNCHECKED_BYTES = 64 * 2**20
"""Allocations below this are not checked (looking up what is available costs a few file reads)."""


def format_bytes(nbytes: float) -> str:
    """A byte count for people: ``'1.5 GiB'``, ``'12 MiB'``.

    Examples
    --------
    >>> format_bytes(3 * 2**29), format_bytes(12 * 2**20), format_bytes(2.0**50)
    ('1.5 GiB', '12 MiB', '1024 TiB')
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            value = nbytes / size
            return f"{value:.2g} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(nbytes)} bytes"


def available_bytes() -> int | None:
    """Bytes this process may still allocate, or None where nothing can be found out.

    The smallest of the system's available memory, the room under the process's address
    space and data limits, and the room under its cgroup's memory limit.
    """
    candidates = [_system_available(), *_rlimit_room(), _cgroup_room()]
    known = [c for c in candidates if c is not None]
    return max(0, min(known)) if known else None


def check_memory(nbytes: float, what: str, hint: str) -> None:
    """Refuse work that needs more memory than is available.

    Parameters
    ----------
    nbytes
        The estimated peak of the work, in bytes.
    what
        What needs it, e.g. ``"simulating a 512x2048x2048 volume"``.
    hint
        What the user can change, e.g. ``"choose a smaller --shape"``.

    Raises
    ------
    CellsynthError
        If ``nbytes`` exceeds :func:`available_bytes` (estimates below
        :data:`UNCHECKED_BYTES` always pass).

    Examples
    --------
    >>> check_memory(1024, "a tiny array", "nothing to change")
    >>> check_memory(2.0**70, "a huge array", "make it smaller")
    Traceback (most recent call last):
    ...
    cellsynth.errors.CellsynthError: a huge array needs about 1073741824 TiB of memory, ...
    """
    if nbytes < UNCHECKED_BYTES:
        return
    available = available_bytes()
    if available is not None and nbytes > available:
        raise CellsynthError(f"{what} needs about {format_bytes(nbytes)} of memory, but only "
                             f"{format_bytes(available)} is available; {hint}")


def release_free_memory() -> None:
    """Give memory that was freed back to the operating system (glibc's ``malloc_trim``).

    glibc keeps freed blocks below its (adaptive) mmap threshold in the heap; a process
    that works in phases, each with its own large temporaries, then holds the freed memory
    of one phase through the next. Calling this between phases keeps the resident memory
    at what the next phase needs. Does nothing where the C library has no ``malloc_trim``.
    """
    if _libc is not None:
        _libc.malloc_trim(0)


MALLOC_ARENAS = 2
"""glibc malloc arenas a cellsynth command uses (:func:`limit_malloc_arenas`)."""


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Let glibc make at most ``arenas`` malloc arenas in this process (``M_ARENA_MAX``).

    glibc gives threads their own arenas (up to eight per core), and memory freed in one
    stays in it: the reading threads of zarr and of the tiler's prefetch each kept their
    slabs, about three times the memory budget of a streaming synthesis of a small volume.
    With two arenas the resident memory follows the budget. The ``cellsynth`` command
    sets this when it starts (the process is its own); a library call never changes it.
    Does nothing without glibc.
    """
    if _libc is not None and hasattr(_libc, "mallopt"):
        _libc.mallopt(_M_ARENA_MAX, int(arenas))


_M_ARENA_MAX = -8


def _load_libc():  # type: ignore[no-untyped-def]
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_libc = _load_libc()


def _system_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _rlimit_room() -> list[int | None]:
    if resource is None:
        return []
    room: list[int | None] = []
    for limit, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft, _ = resource.getrlimit(limit)
        if soft != resource.RLIM_INFINITY:
            used = _status_bytes(field)
            room.append(soft - used if used is not None else soft)
    return room


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Room under the process's cgroup memory limit (cgroup v2 ``memory.max``, or v1
    ``memory.limit_in_bytes``, less the current usage); None where there is no limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        _, controllers, group = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2
            places, files = [root / group.lstrip("/"), root], ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):  # v1
            places, files = [root / "memory" / group.lstrip("/"), root / "memory"], \
                ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        for place in places:
            try:
                limit = (place / files[0]).read_text().strip()
                if limit == "max" or int(limit) >= 2**62:
                    return None
                return int(limit) - int((place / files[1]).read_text())
            except (OSError, ValueError):
                continue
    return None
