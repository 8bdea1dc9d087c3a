"""Reading and writing volumes, sample folders and manifests.

Volumes are (Z, Y, X) arrays with a voxel size in µm (z, y, x). Three containers are
supported:

- TIFF, written as ImageJ hyperstacks (napari and Fiji read the voxel size);
- HDF5 files with ``raw`` / ``label`` datasets and an ``element_size_um`` attribute;
- OME-Zarr images (NGFF 0.4 or 0.5, with a multiscale pyramid and label layers;
  :mod:`cellsynth.omezarr`), written chunk by chunk for volumes that do not fit in memory.

A sample folder (:func:`write_sample`) holds TIFFs, or one OME-Zarr image
``sample.ome.zarr`` whose ``labels/`` group holds the labels, the mask and the foreground.

Every write goes to a temporary name in the destination folder and is renamed into place
when complete, so a killed process never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import omezarr
from cellsynth.checks import check_voxel_size
from cellsynth.errors import CellsynthError
from cellsynth.outputs import check_output, check_replaceable, normalized

VoxelSize = tuple[float, float, float]

SAMPLE_LOG = "log.json"
"""The file of a sample folder that records how long its stages took; every other file of a
sample is the same byte for byte for the same seed."""

SAMPLE_VOLUMES = ("labels", "mask", "foreground", "image")
"""Volume names of a sample folder, in the order they are written."""

SAMPLE_LABELS = ("labels", "mask", "foreground")
"""The volumes of a sample that are label images (integer labels, 0/1 masks)."""

SAMPLE_ZARR = "sample.ome.zarr"
"""The OME-Zarr image of a sample folder in zarr format; its ``labels/`` group holds
:data:`SAMPLE_LABELS`."""

_TIFF_SUFFIXES = (".tif", ".tiff")
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_ZARR_SUFFIX = ".zarr"


# --------------------------------------------------------------------------- checks


def check_volume(array: Any, name: str = "volume") -> np.ndarray:
    """Check that ``array`` is a non-empty 3D array of numbers without NaN or infinity."""
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        raise CellsynthError(f"{name} must be a 3D (Z, Y, X) array, got {type(array).__name__}")
    _check_layout(array.shape, array.dtype, name)
    if isinstance(array, np.ndarray) and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise CellsynthError(f"{name} contains NaN or infinite values; replace them (e.g. with 0) first")
    return array


def check_labels(array: Any, name: str = "labels") -> Any:
    """Check instance labels (or a 0/1 mask): a 3D volume of non-negative integers (0 = background).

    Large on-disk arrays are checked plane block by plane block.
    """
    check_volume(array, name)
    kind = np.dtype(array.dtype).kind
    if kind not in "biu":
        raise CellsynthError(f"{name} holds {np.dtype(array.dtype)} values; labels are integers (0 = background): "
                             "give an integer labels file or a 0/1 mask")
    if kind == "i":
        step = max(1, 2**26 // max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize))
        for z in range(0, array.shape[0], step):
            low = np.asarray(array[z:z + step]).min()
            if low < 0:
                raise CellsynthError(f"{name} holds negative values (down to {low}); labels are 0 (background) or "
                                     "positive ids")
    return array


def _check_layout(shape: tuple[int, ...], dtype: Any, name: str) -> None:
    """A volume's shape and type: 3D, not empty, numbers."""
    if len(shape) != 3:
        kind = "a 2D image" if len(shape) == 2 else f"{len(shape)}D"
        raise CellsynthError(f"{name} is {kind} of shape {tuple(shape)}; cellsynth needs a 3D (Z, Y, X) volume")
    if 0 in shape:
        raise CellsynthError(f"{name} is empty (shape {tuple(shape)})")
    if np.dtype(dtype).kind not in "biuf":
        raise CellsynthError(f"{name} holds {np.dtype(dtype)} values; cellsynth reads integer or floating-point "
                             "volumes")


def _check_claimed(shape: tuple[int, ...], dtype: Any, name: str) -> None:
    """Check a volume as its file describes it, before reading: layout and that it fits in memory."""
    from cellsynth.memory import check_memory

    _check_layout(tuple(shape), dtype, name)
    nbytes = float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize
    check_memory(nbytes, f"reading {name} ({'x'.join(map(str, shape))} {np.dtype(dtype)})",
                 "the file claims a volume larger than this machine can hold; check it or use a smaller crop")


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On an exception the temporary file or folder is removed and ``path`` is untouched.
    An existing ``path`` is replaced only once the new content is complete, and an existing
    folder only where :func:`cellsynth.outputs.check_replaceable` allows it. Temporaries
    that a killed process left beside ``path`` are removed first (:func:`remove_stale_temporaries`).

    Parameters
    ----------
    path
        The final destination (``sub/../name`` is ``name``: no folder ``sub`` is made).
    directory
        Whether the destination is a folder (e.g. an OME-Zarr store or a sample folder).
    """
    path = normalized(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(parent, path.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner()}.", suffix=_TMP_SUFFIX, dir=parent))
    except OSError as err:
        raise CellsynthError(f"cannot write to {parent}: {err.strerror or err}; choose a writable output location") from None
    target = tmp if directory else tmp / path.name
    try:
        yield target
        if directory:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes private (0700) folders; finished ones are not
            replace_directory(tmp, path)
        else:
            os.replace(target, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CellsynthError(f"could not write {path}: {err.strerror or err}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not directory:
        shutil.rmtree(tmp, ignore_errors=True)


_TMP_SUFFIX = ".tmp"
_OLD_SUFFIX = ".old"


def _owner() -> str:
    """``HOST-PID`` of this process for temporary names (HOST: a short hash of the host name)."""
    import socket
    import zlib

    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}-{os.getpid()}"


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_path`'s temporaries (hidden, ``.tmp`` or ``.old``)."""
    return name.startswith(".") and (name.endswith(_TMP_SUFFIX) or name.endswith(_OLD_SUFFIX))


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> list[Path]:
    """Remove the temporaries of destination ``folder/name`` whose writer process is gone.

    :func:`atomic_path` names its temporaries ``.NAME.HOST-PID.*.tmp`` (and ``.NAME.HOST-PID.old``
    while a folder is replaced); a process killed while writing leaves them behind. Those of
    this host whose process no longer runs are deleted; others (another host on a shared file
    system, a running process) are left alone.

    Returns
    -------
    list of pathlib.Path
        The removed entries.
    """
    host = _owner().split("-")[0]
    removed = []
    prefix = f".{name}."
    for entry in Path(folder).iterdir():
        if not (entry.name.startswith(prefix) and is_temporary(entry.name)):
            continue
        owner = entry.name[len(prefix):].split(".")[0]
        entry_host, _, pid = owner.partition("-")
        if entry_host != host or not pid.isdigit() or _running(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_directory(new: Path, path: Path) -> None:
    """Move folder ``new`` to ``path``, replacing an existing folder there if it may be replaced
    (:func:`cellsynth.outputs.check_replaceable`; any Zarr store or array is data cellsynth may replace)."""
    if path.exists():
        check_replaceable(path, volume=True)
        old = path.with_name(f".{path.name}.{_owner()}{_OLD_SUFFIX}")
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)


def _destination(path: str | os.PathLike, atomic: bool, *,
                 directory: bool = False) -> contextlib.AbstractContextManager[Path]:
    """:func:`atomic_path`, or ``path`` itself when the caller already writes into a
    temporary folder (its rename makes the whole folder appear at once)."""
    return atomic_path(path, directory=directory) if atomic else contextlib.nullcontext(Path(path))


def write_json(path: str | os.PathLike, data: Mapping[str, Any], *, atomic: bool = True) -> None:
    """Write ``data`` as indented JSON, atomically (in place with ``atomic=False``)."""
    with _destination(path, atomic) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object, with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise CellsynthError(f"file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CellsynthError(f"{path} is not valid JSON ({err}); restore or delete it") from None
    if not isinstance(data, dict):
        raise CellsynthError(f"{path} must hold a JSON object")
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- TIFF


def write_tiff(path: str | os.PathLike, array: np.ndarray, voxel_size: VoxelSize, *, atomic: bool = True) -> None:
    """Write a (Z, Y, X) volume as an ImageJ hyperstack with its voxel size in µm.

    uint8, uint16 and float32 are stored as ImageJ files. Other integer types (label
    volumes with more than 65535 cells) are stored as OME-TIFF with physical sizes,
    which napari and Fiji (Bio-Formats) also read with the right scale.

    With ``atomic=False`` the file is written in place: for files inside a folder that is
    itself assembled under a temporary name (:func:`write_sample`).
    """
    import tifffile

    array = np.asarray(check_volume(array))
    vz, vy, vx = check_voxel_size(voxel_size)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    with _destination(path, atomic) as tmp:
        if array.dtype in (np.uint8, np.uint16, np.float32):
            tifffile.imwrite(
                tmp, array, imagej=True, resolution=(1.0 / vx, 1.0 / vy),
                metadata={"spacing": vz, "unit": "um", "axes": "ZYX"},
            )
        else:
            tifffile.imwrite(
                tmp, array, ome=True, photometric="minisblack",  # not RGB where X is 3 or 4
                resolution=(1.0 / vx, 1.0 / vy), resolutionunit="MICROMETER",
                metadata={"axes": "ZYX", "PhysicalSizeX": vx, "PhysicalSizeY": vy, "PhysicalSizeZ": vz,
                          "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm"},
            )


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, VoxelSize | None]:
    """Read a 3D TIFF and its voxel size (None where the file records none).

    Refuses files that tifffile reports as damaged (a truncated file: a broken chain of
    pages, data beyond the end of the file, fewer planes than its ImageJ metadata says),
    2D images (a single plane is a volume only where the file records a z spacing, as
    cellsynth's own files do), and volumes larger than the memory available.
    """
    import tifffile

    path = _existing(path)
    try:
        with _tifffile_complaints() as complaints, tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise CellsynthError(f"TIFF {path} holds no image")
            series = tif.series[0]
            planes = (tif.imagej_metadata or {}).get("images")
            if isinstance(planes, int) and planes > int(np.prod(series.shape[:-2])):
                complaints.append(f"{planes} planes in its ImageJ metadata, {int(np.prod(series.shape[:-2]))} found")
            size = path.stat().st_size
            if any(o + c > size for page in tif.pages for o, c in zip(page.dataoffsets, page.databytecounts)):
                complaints.append("image data beyond the end of the file")
            _refuse_damaged(path, complaints)
            shape = tuple(s for s in series.shape if s != 1) if len(series.shape) > 3 else tuple(series.shape)
            voxel = _tiff_voxel_size(tif)
            if len(shape) == 2 and _records_z_spacing(tif):  # a volume of one plane, not a 2D image
                shape = (1, *shape)
            _check_claimed(shape, series.dtype, str(path))
            array = series.asarray().reshape(shape)
            _refuse_damaged(path, complaints)
    except CellsynthError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged file makes tifffile, zlib or numpy raise anything
        raise CellsynthError(f"cannot read TIFF {path}: {type(err).__name__}: {err}; is it a complete TIFF?") from None
    return check_volume(array, str(path)), voxel


def _records_z_spacing(tif: Any) -> bool:
    """Whether a TIFF records a z spacing (ImageJ ``spacing``, OME ``PhysicalSizeZ``): a volume,
    even where it holds a single plane."""
    if tif.is_ome:
        return "PhysicalSizeZ" in (tif.ome_metadata or "")
    return "spacing" in (tif.imagej_metadata or {})


def _refuse_damaged(path: Path, complaints: list[str]) -> None:
    if complaints:
        raise CellsynthError(f"TIFF {path} is damaged or truncated ({complaints[0]}); copy it again from its source")


@contextlib.contextmanager
def _tifffile_complaints() -> Iterator[list[str]]:
    """Collect what tifffile logs while it reads: it warns instead of failing on damaged files."""
    import logging

    complaints: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                complaints.append(record.getMessage().splitlines()[0])

    logger, handler = logging.getLogger("tifffile"), Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # not also printed on stderr
    try:
        yield complaints
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _tiff_voxel_size(tif: Any) -> VoxelSize | None:
    if tif.is_ome:
        import xml.etree.ElementTree as ET

        root = ET.fromstring(tif.ome_metadata)
        pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
        if pixels is not None and "PhysicalSizeX" in pixels.attrib:
            get = lambda k: float(pixels.attrib.get(k, 1.0))  # noqa: E731
            return (get("PhysicalSizeZ"), get("PhysicalSizeY"), get("PhysicalSizeX"))
    meta = tif.imagej_metadata
    if meta is None:
        return None
    tags = tif.pages[0].tags
    xy = []
    for tag in ("YResolution", "XResolution"):
        if tag not in tags:
            return None
        num, den = tags[tag].value
        xy.append(den / num if num else 1.0)
    return (float(meta.get("spacing", 1.0)), xy[0], xy[1])


# --------------------------------------------------------------------------- HDF5


def read_h5(path: str | os.PathLike, dataset: str = "raw") -> tuple[np.ndarray, VoxelSize | None]:
    """Read one 3D dataset of an HDF5 file and its ``element_size_um`` attribute.

    Refuses a missing name, a group in its place, a dataset that is not a 3D volume of
    numbers or does not fit in memory, and an ``element_size_um`` that is not three voxel
    sizes in µm.
    """
    import h5py

    path = _existing(path)
    where = f"{path}:{dataset}"
    try:
        with h5py.File(path, "r") as f:
            node = f.get(dataset)
            if node is None:
                raise CellsynthError(f"{path} has no dataset {dataset!r}; it has {sorted(f.keys())}")
            if not isinstance(node, h5py.Dataset):
                raise CellsynthError(f"{where} is a group, not a dataset; give the name of a 3D dataset in it "
                                     f"(it holds {sorted(node.keys())[:5]})")
            _check_claimed(node.shape, node.dtype, where)
            array = node[()]
            voxel = None
            if "element_size_um" in node.attrs:
                recorded = node.attrs["element_size_um"]
                try:
                    voxel = check_voxel_size(np.atleast_1d(recorded).tolist())
                except CellsynthError:
                    shown = np.asarray(recorded).tolist()
                    raise CellsynthError(f"{where} records element_size_um {shown!r}, not three voxel sizes (z y x) "
                                         "in µm; fix the attribute or pass --voxel-size") from None
    except CellsynthError:
        raise
    except Exception as err:  # noqa: BLE001 - h5py raises OSError, KeyError, ValueError... for damaged files
        raise CellsynthError(f"cannot read HDF5 {path}: {type(err).__name__}: {err}") from None
    return check_volume(array, where), voxel  # type: ignore[return-value]


def write_h5(path: str | os.PathLike, datasets: Mapping[str, np.ndarray], voxel_size: VoxelSize, *,
             atomic: bool = True) -> None:
    """Write (Z, Y, X) volumes as datasets of one HDF5 file, each with ``element_size_um``.

    The layout PlantSeg and pytorch-3dunet read (``raw``, ``label``, voxel size (z, y, x) in
    µm on every dataset); :func:`read_h5` reads it back. Datasets are gzip-compressed.
    With ``atomic=False`` the file is written in place.
    """
    import h5py

    voxel = check_voxel_size(voxel_size)
    with _destination(path, atomic) as tmp, h5py.File(tmp, "w") as f:
        for name, array in datasets.items():
            ds = f.create_dataset(name, data=np.asarray(check_volume(np.asarray(array), name)), compression="gzip")
            ds.attrs["element_size_um"] = np.asarray(voxel, dtype=np.float64)


# --------------------------------------------------------------------------- OME-Zarr


def write_zarr(path: str | os.PathLike, array: np.ndarray, voxel_size: VoxelSize, *, atomic: bool = True,
               ngff: str = omezarr.DEFAULT_NGFF, label: bool = False) -> None:
    """Write a volume as an OME-Zarr image with its pyramid (:func:`cellsynth.omezarr.write_image`),
    atomically (in place with ``atomic=False``); ``label`` for label or mask volumes."""
    array = check_volume(array)
    name = Path(path).name.removesuffix(".zarr").removesuffix(".ome")
    with _destination(path, atomic, directory=True) as tmp:
        omezarr.write_image(tmp, array, check_voxel_size(voxel_size), ngff=ngff, name=name, label=label)


def replace_zarr_image(path: str | os.PathLike, new_image: str | os.PathLike) -> None:
    """Put the levels of the OME-Zarr image ``new_image`` into the image at ``path``, keeping the
    labels of ``path``; ``new_image`` is removed.

    Each level is swapped by renaming folders, so a reader sees the old or the new level,
    never a half-written one. Both images must have the same Zarr format and levels.
    """
    old, new = Path(path), Path(new_image)
    old_group, new_group = omezarr.open_group(old), omezarr.open_group(new)
    levels = omezarr.level_paths(new_group)
    if new_group.metadata.zarr_format != old_group.metadata.zarr_format or levels != omezarr.level_paths(old_group):
        raise CellsynthError(f"the new image of {old} does not have its Zarr format and pyramid levels")
    for level in levels:
        replace_directory(new / level, old / level)
    multiscales = omezarr.ome_attributes(new_group)["multiscales"]
    omezarr.set_ome_attributes(omezarr.open_group(old, mode="r+"), {"multiscales": multiscales},
                               omezarr.ngff_version(old_group))
    shutil.rmtree(new, ignore_errors=True)


# --------------------------------------------------------------------------- any volume


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an OME-Zarr store or a group inside one (``sample.ome.zarr/labels/mask``)."""
    path = Path(path)
    return path.name.endswith(_ZARR_SUFFIX) or (
        path.suffix.lower() not in (*_TIFF_SUFFIXES, *_H5_SUFFIXES, ".npy")
        and any(part.endswith(_ZARR_SUFFIX) for part in path.parts[:-1]))


def volume_format(path: str | os.PathLike) -> str | None:
    """The container a volume file name asks for: ``"zarr"`` (``.ome.zarr``), ``"tif"``
    (``.tif``, ``.tiff``), or None for other names.

    Examples
    --------
    >>> volume_format("image.ome.zarr"), volume_format("image.TIF"), volume_format("image.png")
    ('zarr', 'tif', None)
    """
    if is_zarr(path):
        return "zarr"
    return "tif" if Path(path).suffix.lower() in _TIFF_SUFFIXES else None


def read_volume(
    path: str | os.PathLike, dataset: str = "raw", *, lazy: bool = False,
) -> tuple[Any, VoxelSize | None]:
    """Read a volume from TIFF, HDF5 (``dataset``), OME-Zarr or ``.npy``.

    Returns the array and the voxel size in µm, or None where the file does not record it.
    With ``lazy=True`` an OME-Zarr volume is returned as an on-disk array.
    """
    suffix = Path(path).suffix.lower()
    if is_zarr(path):
        array, voxel = omezarr.open_image(path)
        array = check_volume(array, str(path))
        return (array if lazy else array[...]), voxel
    if suffix in _TIFF_SUFFIXES:
        return read_tiff(path)
    if suffix in _H5_SUFFIXES:
        return read_h5(path, dataset)
    if suffix == ".npy":
        return _read_npy(_existing(path)), None
    raise CellsynthError(f"unsupported file type {path!s}; use .tif, .h5, .npy or .ome.zarr")


MAX_LABEL_ID = 2**24
"""Label ids above this are renumbered when read (:func:`read_labels`), keeping their order."""


def read_labels(path: str | os.PathLike, dataset: str = "label") -> tuple[np.ndarray, VoxelSize | None]:
    """:func:`read_volume` for instance labels or masks: refuses anything but non-negative
    integers (:func:`check_labels`).

    Ids above :data:`MAX_LABEL_ID` (sparse ids of a crop from a large segmentation, say) are
    renumbered 1..N in their order, so that per-label tables stay small.
    """
    array, voxel = read_volume(path, dataset)
    check_labels(array, str(path))
    if array.dtype != bool and array.max() > MAX_LABEL_ID:
        ids, inverse = np.unique(array, return_inverse=True)
        array = (inverse.reshape(array.shape) + (ids[0] != 0)).astype(label_dtype(len(ids)))
    return array, voxel


def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array: no pickles, no ``.npz`` archive under another name, checked size."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"PK"):
        raise CellsynthError(f"{path} is an .npz archive, not a .npy array; save one array with numpy.save")
    try:
        with open(path, "rb") as f:  # the header first: what the file claims, before any data is mapped
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
        _check_claimed(shape, dtype, str(path))
        array = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
    except CellsynthError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, OSError, EOFError... for damaged files
        raise CellsynthError(f"cannot read {path} as a .npy array: {type(err).__name__}: {err}") from None
    return check_volume(array, str(path))


def write_volume(path: str | os.PathLike, array: np.ndarray, voxel_size: VoxelSize, *, atomic: bool = True,
                 ngff: str = omezarr.DEFAULT_NGFF, label: bool = False) -> None:
    """Write a volume as TIFF or OME-Zarr (NGFF version ``ngff``), chosen by the file name.

    With ``atomic=False`` it is written in place, for a volume inside a folder that is
    itself assembled under a temporary name. ``label``: the volume holds labels or a mask
    (an OME-Zarr pyramid then samples it instead of averaging).
    """
    file_format = volume_format(path)
    if file_format == "zarr":
        write_zarr(path, array, voxel_size, atomic=atomic, ngff=ngff, label=label)
    elif file_format == "tif":
        write_tiff(path, array, voxel_size, atomic=atomic)
    else:
        raise CellsynthError(f"cannot write {path}: use a .tif or .ome.zarr name")


def volume_filename(name: str, file_format: str) -> str:
    """Where volume ``name`` goes in a sample folder of ``file_format`` (tif or zarr).

    TIFF: ``NAME.tif``. OME-Zarr: the image is ``sample.ome.zarr`` itself, the labels, mask
    and foreground are its label images ``sample.ome.zarr/labels/NAME``, and other images
    (quality levels) are OME-Zarr images of their own, ``NAME.ome.zarr``.

    Examples
    --------
    >>> volume_filename("mask", "tif"), volume_filename("mask", "zarr"), volume_filename("image", "zarr")
    ('mask.tif', 'sample.ome.zarr/labels/mask', 'sample.ome.zarr')
    """
    if file_format not in ("tif", "zarr"):
        raise CellsynthError(f"unknown format {file_format!r}; use tif or zarr")
    if file_format == "tif":
        return f"{name}.tif"
    if name == "image":
        return SAMPLE_ZARR
    return f"{SAMPLE_ZARR}/{omezarr.LABELS_GROUP}/{name}" if name in SAMPLE_LABELS else f"{name}.ome.zarr"


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise CellsynthError(f"file not found: {path}")
    return path


# --------------------------------------------------------------------------- label dtype


def label_dtype(max_label: int) -> np.dtype:
    """uint16 for up to 65535 labels, else uint32 (the package's label contract)."""
    return np.dtype(np.uint16 if max_label <= np.iinfo(np.uint16).max else np.uint32)


def image_to_uint16(image: np.ndarray) -> np.ndarray:
    """Convert a float image in [0, 1] to uint16 (values are clipped, then rounded half to even)."""
    scaled = np.clip(image, 0.0, 1.0)  # one temporary, updated in place below
    scaled *= 65535.0
    return np.rint(scaled, out=scaled).astype(np.uint16)


# --------------------------------------------------------------------------- positions


def write_positions(path: str | os.PathLike, table: Mapping[str, np.ndarray], *, atomic: bool = True) -> None:
    """Write a per-cell table (column name -> 1D array of equal length) as CSV, atomically
    (in place with ``atomic=False``)."""
    columns = list(table)
    n = len(next(iter(table.values()))) if table else 0
    with _destination(path, atomic) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in range(n):
            writer.writerow([_csv_value(table[c][i]) for c in columns])


def _csv_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return value.item() if isinstance(value, np.generic) else value


def read_positions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV table into columns; numeric columns become float or int arrays."""
    path = _existing(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise CellsynthError(f"cannot read CSV {path}: {err}") from None
    if not rows:
        raise CellsynthError(f"{path} is empty; it needs a header row")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    if any(len(r) != len(header) for r in body):
        raise CellsynthError(f"{path}: every row must have {len(header)} columns like the header")
    table: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        values = [r[j] for r in body]
        try:
            column = np.array([float(v) for v in values])
            if column.size and np.all(column == np.round(column)) and all("." not in v and "e" not in v.lower() for v in values):
                column = column.astype(np.int64)
        except ValueError:
            column = np.array(values)
        table[name] = column
    return table


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    """One annotated volume: the contents of a sample folder.

    Attributes
    ----------
    labels
        Instance labels (uint16/uint32, 0 = background).
    mask
        The structure the generator sees (uint8 0/1): nuclei foreground or membranes.
    foreground
        The organism region (uint8 0/1).
    voxel_size
        Voxel size in µm (z, y, x).
    positions
        One row per cell: ``label``, ``z_um``, ``y_um``, ``x_um``, ``z_px``, ``y_px``,
        ``x_px`` and shape parameters.
    metadata
        Everything that goes into ``sample.json`` (parameters, seed, timings, ...).
    image
        The synthetic image (float32 in [0, 1]) once synthesised.
    """

    labels: Any
    mask: Any
    foreground: Any
    voxel_size: VoxelSize
    positions: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    image: Any = None


def write_sample(
    path: str | os.PathLike, sample: Sample, *, file_format: str = "tif", overwrite: bool = False,
    images: Mapping[str, np.ndarray] | None = None, ngff: str = omezarr.DEFAULT_NGFF,
) -> Path:
    """Write ``sample`` as a sample folder, atomically.

    The folder is assembled under a temporary name and renamed when every file is
    written, so an interrupted write never leaves a folder that looks complete.

    Parameters
    ----------
    path
        The sample folder.
    sample
        What to write; ``sample.image`` (if set) becomes ``image``. Its ``metadata`` goes to
        ``sample.json``, except ``timings``, which go to ``log.json`` (:data:`SAMPLE_LOG`).
    file_format
        ``tif`` (ImageJ TIFFs) or ``zarr``: one OME-Zarr image ``sample.ome.zarr`` with the
        labels, mask and foreground as label images in its ``labels/`` group (its image
        stays empty, all 0, until one is synthesised; ``sample.json`` lists it only then).
    overwrite
        Replace an existing output in ``path`` (only cellsynth output is ever replaced).
    images
        More images (float in [0, 1]) by volume name, e.g. one per quality level
        (``image_alpha10``); stored as uint16 like ``image`` and listed in ``files``.
    ngff
        OME-NGFF version of zarr samples: ``"0.4"`` (Zarr format 2) or ``"0.5"`` (Zarr format 3).

    Raises
    ------
    CellsynthError
        If ``path`` cannot be written or exists and may not be replaced
        (:func:`cellsynth.outputs.check_output`).
    """
    from cellsynth import __version__

    check_output(path, overwrite=overwrite)
    path = Path(path)
    voxel = check_voxel_size(sample.voxel_size)
    volumes = {name: getattr(sample, name) for name in SAMPLE_VOLUMES if getattr(sample, name) is not None}
    ngff = omezarr.check_ngff(ngff)
    with atomic_path(path, directory=True) as tmp:
        # the folder is temporary until renamed, so its files are written in place
        if file_format == "zarr":
            files = _write_sample_zarr(tmp, path.name, volumes, voxel, ngff)
        else:
            files = {}
            for name, volume in volumes.items():
                volume = image_to_uint16(np.asarray(volume)) if name == "image" else np.asarray(volume)
                files[name] = volume_filename(name, file_format)
                write_volume(tmp / files[name], volume, voxel, atomic=False)
        write_positions(tmp / "positions.csv", sample.positions, atomic=False)
        files["positions"] = "positions.csv"
        for name, image in (images or {}).items():
            files[name] = volume_filename(name, file_format)
            write_volume(tmp / files[name], image_to_uint16(np.asarray(image)), voxel, atomic=False, ngff=ngff)
        recorded = {k: v for k, v in sample.metadata.items() if k != "timings"}
        if "timings" in sample.metadata:  # they differ from run to run: apart, so that sample.json does not
            write_json(tmp / SAMPLE_LOG, {"timings": sample.metadata["timings"]}, atomic=False)
        meta = {"cellsynth_version": __version__, **recorded, "shape": list(np.shape(sample.labels)),
                "voxel_size_um": list(voxel), "format": file_format,
                **({"ngff": ngff} if file_format == "zarr" else {}), "files": files}
        write_json(tmp / "sample.json", meta, atomic=False)  # written last: its presence marks a finished sample
    return path


def _write_sample_zarr(folder: Path, name: str, volumes: Mapping[str, Any], voxel: VoxelSize,
                       ngff: str) -> dict[str, str]:
    """The sample's OME-Zarr image (empty without an image) with its label images; their file names."""
    store = folder / SAMPLE_ZARR
    shape = tuple(np.shape(volumes["labels"]))
    group = omezarr.create_image(store, shape, np.uint16, voxel, ngff=ngff, name=name)
    files = {}
    labels = {key: volumes[key] for key in SAMPLE_LABELS if key in volumes}
    omezarr.add_labels(store, labels, voxel)
    files.update({key: volume_filename(key, "zarr") for key in labels})
    if "image" in volumes:
        group["0"][...] = image_to_uint16(np.asarray(volumes["image"]))
        omezarr.fill_pyramid(group)
        files["image"] = SAMPLE_ZARR
    return files


def sample_image_file(folder: str | os.PathLike, file_format: str) -> str:
    """Where ``cellsynth synthesize`` puts the image of a sample folder: ``image.tif``; for
    zarr the sample's OME-Zarr image, or ``image.ome.zarr`` beside the separate OME-Zarr
    volumes of sample folders written before the labels moved into the image."""
    if file_format == "zarr" and not (Path(folder) / SAMPLE_ZARR).is_dir():
        return "image.ome.zarr"
    return volume_filename("image", file_format)


def _inside_folder(name: Any) -> bool:
    """Whether ``name`` is a relative file name that stays inside its folder."""
    return isinstance(name, str) and bool(name) and not Path(name).is_absolute() and ".." not in Path(name).parts


def read_sample(path: str | os.PathLike, *, lazy: bool = False) -> Sample:
    """Read a sample folder written by :func:`write_sample`.

    With ``lazy=True`` OME-Zarr volumes stay on disk.
    """
    path = Path(path)
    if not (path / "sample.json").is_file():
        raise CellsynthError(f"{path} is not a sample folder (no sample.json); create one with `cellsynth simulate`")
    meta = read_json(path / "sample.json")
    try:
        voxel = check_voxel_size(meta.get("voxel_size_um", (1, 1, 1)))
    except CellsynthError as err:
        raise CellsynthError(f"{path / 'sample.json'}: {err}") from None
    files = meta.get("files", {})
    if not isinstance(files, dict) or not all(_inside_folder(name) for name in files.values()):
        raise CellsynthError(f"{path / 'sample.json'} is damaged: its files must map volume names to file names "
                             "inside the sample folder; re-create the sample")
    volumes: dict[str, Any] = {}
    for name, fname in files.items():
        if name in SAMPLE_VOLUMES:
            array, _ = read_volume(path / fname, lazy=lazy)
            if name == "image" and not lazy:
                array = array.astype(np.float32) / (65535.0 if array.dtype == np.uint16 else 1.0)
            volumes[name] = array
    missing = [n for n in ("labels", "mask", "foreground") if n not in volumes]
    if missing:
        raise CellsynthError(f"sample {path} lacks {', '.join(missing)}; re-create it with `cellsynth simulate`")
    positions = read_positions(path / "positions.csv") if (path / "positions.csv").is_file() else {}
    return Sample(voxel_size=voxel, positions=positions, metadata=meta, **volumes)
