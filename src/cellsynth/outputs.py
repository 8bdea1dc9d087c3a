"""Where commands write: one check of an output path before any work, and one rule for ``--overwrite``.

Every command that writes calls :func:`check_output` on its output before it computes
anything, so that a bad ``--out`` costs nothing and leaves nothing behind. The rules:

- A path is normalised without touching the disk (``sub/../o`` is ``o``; no stray ``sub/``
  is ever made), and a folder output may not contain the current folder (``--out .``
  would replace the folder the user works in).
- An existing output is replaced only with ``overwrite``, and a non-empty folder only when
  it is recognisably cellsynth output (:func:`is_cellsynth_output`: a ``sample.json``,
  ``dataset.json``, ``run.json``, export manifest or report ``metrics.json`` that records the
  cellsynth version), or an OME-Zarr store where a volume is written. Anything else (a
  project folder, a folder of sources) is refused, whatever the flags say.
- A folder whose permissions grant write access to nobody is read-only by intent and is
  respected, also for root (who could write to it anyway).

:func:`cellsynth.io.atomic_path` applies :func:`check_replaceable` again at the moment it
replaces a folder, so the library never deletes a foreign folder either.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from cellsynth.errors import CellsynthError

OUTPUT_MARKERS = ("sample.json", "dataset.json", "run.json", "cellsynth_export.json", "metrics.json")
"""Files by which a folder is recognised as cellsynth output (each records ``cellsynth_version``)."""

_ZARR_MARKERS = (".zgroup", ".zattrs", ".zarray", "zarr.json")


def normalized(path: str | os.PathLike) -> Path:
    """``path`` made absolute and free of ``..`` and ``.``, without touching the disk.

    Examples
    --------
    >>> normalized("sub/../out") == Path.cwd() / "out"
    True
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise CellsynthError("the output path is empty; give a file or folder name")
    return Path(os.path.abspath(text))


def is_cellsynth_output(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds output that cellsynth wrote (see :data:`OUTPUT_MARKERS`)."""
    folder = Path(folder)
    for name in OUTPUT_MARKERS:
        marker = folder / name
        if not marker.is_file() or marker.stat().st_size > 2**26:
            continue
        try:
            record = json.loads(marker.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and ("cellsynth_version" in record or (
                isinstance(record.get("info"), dict) and "cellsynth_version" in record["info"])):
            return True
    return False


def is_zarr_store(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a Zarr store (version 2 or 3)."""
    return any((Path(folder) / name).is_file() for name in _ZARR_MARKERS)


def is_read_only(path: str | os.PathLike) -> bool:
    """Whether cellsynth must not write into (a folder) or replace (a file) ``path``.

    True where the operating system refuses writing, and where the permission bits grant
    write access to nobody (``chmod a-w``): that is the user's intent even for root.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return True
    access = os.W_OK | os.X_OK if stat.S_ISDIR(mode) else os.W_OK
    return not os.access(path, access) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def check_replaceable(path: str | os.PathLike, *, volume: bool = False) -> None:
    """Refuse to replace folder ``path`` unless it is empty, cellsynth output, or (``volume``) a Zarr store.

    Raises
    ------
    CellsynthError
        Naming the folder and what to do instead.
    """
    path = Path(path)
    if not path.is_dir() or not any(path.iterdir()):
        return
    if is_cellsynth_output(path) or (volume and is_zarr_store(path)):
        return
    raise CellsynthError(f"{path} holds files that are not cellsynth output (no sample.json, dataset.json, run.json "
                         f"or report{' and not a Zarr store' if volume else ''}); --overwrite replaces only cellsynth "
                         "output, so choose another output or empty the folder yourself")


def check_output(
    path: str | os.PathLike | None, *, overwrite: bool = False, folder: bool = True, flag: str = "--out",
    existing_ok: bool = False,
) -> Path:
    """Check an output path before any work; return it normalised (:func:`normalized`).

    Parameters
    ----------
    path
        The output the user gave (None: not given).
    overwrite
        Whether the user allowed replacing an existing output.
    folder
        The output is a folder (a sample, data set, report, run or export); else a file
        or an OME-Zarr store (``.ome.zarr``, which is a folder on disk).
    flag
        The option that named the output, for the messages.
    existing_ok
        The caller has its own rule for an existing output (a training run to resume, a
        data set to complete): check only where it is and that it can be written.

    Raises
    ------
    CellsynthError
        If the path is missing or empty, names or contains the current folder, is a file
        where a folder is wanted (or the reverse), exists without ``overwrite``, is not
        replaceable (:func:`check_replaceable`), is read-only, or lies below a file or in a
        folder that cannot be written.
    """
    if path is None:
        raise CellsynthError(f"give the output {'folder' if folder else 'file'} with {flag}")
    given = os.fspath(path)
    target = normalized(given)
    volume = not folder and str(target).endswith(".zarr")
    if folder or volume:
        cwd = Path.cwd()
        if target == cwd or target in cwd.parents:
            raise CellsynthError(f"{flag} {given} is the current folder or contains it; cellsynth replaces its "
                                 f"output as a whole, so give a new folder name, e.g. {flag} {given.rstrip('/')}/out")
    if target.exists() or target.is_symlink():
        if target.is_dir() != (folder or volume):
            kind = "a folder" if target.is_dir() else "a file"
            raise CellsynthError(f"{flag} {given} is {kind}; give {'a folder' if folder else 'a file'} name")
        empty_folder = target.is_dir() and not any(target.iterdir())
        if not empty_folder and not existing_ok:
            if not overwrite:
                raise CellsynthError(f"{given} already exists; pass --overwrite to replace it or choose another "
                                     f"{flag}")
            if target.is_dir():
                check_replaceable(target, volume=volume)
        if is_read_only(target):
            raise CellsynthError(f"{given} is read-only; make it writable or choose another {flag}")
    _check_parent(target, given, flag)
    return target


def _check_parent(target: Path, given: str, flag: str) -> None:
    """The nearest existing folder above ``target`` must be a writable folder."""
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CellsynthError(f"{flag} {given}: {parent} is a file, not a folder; choose another {flag}")
    if is_read_only(parent):
        raise CellsynthError(f"{flag} {given}: cannot write in {parent} (read-only); choose another {flag}")
