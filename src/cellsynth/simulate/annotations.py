"""Maps derived from instance labels: boundaries, membrane walls, centroids, surface distance,
structure masks.

Every function takes plain arrays (Z, Y, X) and a voxel size in µm (z, y, x) where
distances matter. :func:`structure_mask` is the single place where the mask that the image
generator sees is derived from labels, for simulated and for real annotations alike.

Membranes
---------
:func:`membrane_mask` is the one wall definition, used for simulated and real labels: a
labelled voxel belongs to a wall when its distance (µm, between voxel centres) to the
nearest voxel of another label or of the background is at most ``thickness / 2``; voxels
that share a face with another label always do. For a flat wall this marks the voxels that
lie wholly within ``thickness / 2`` of the interface, the same number on both sides: the
width along the normal is ``thickness`` when it is an even number of voxels there, else the
next smaller even number (at least one voxel per side). Swapping label values changes
nothing. The border of the volume is not a wall.
"""

from __future__ import annotations

import edt
import numpy as np

from cellsynth.conditioning import signed_distance_um
from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_volume, check_voxel_size

DEFAULT_MEMBRANE_THICKNESS_UM = 1.0
"""Default membrane (wall) thickness in µm.

About the apparent thickness of a plant cell wall with its two membranes under a confocal
point-spread function: on the real Arabidopsis ovule labels (0.15 µm voxels) the voxels
it marks average 2.4 times the image intensity of the others. A symmetric wall covers the same number of voxels
on both sides of the interface, so at the default 1 µm voxels it becomes the thinnest
such wall: one voxel per side.
"""

STRUCTURES = ("nuclei", "membranes")
"""The kinds of structure masks :func:`structure_mask` derives from labels."""


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """Labelled voxels that touch (share a face with) a voxel of another label or background.

    Symmetric: both voxels of every touching pair of different cells are marked. The border
    of the volume is not a boundary (cells may continue beyond the field of view).

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X), 0 = background.

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1).

    Examples
    --------
    >>> boundary_map(np.array([[[1, 1, 1, 2, 2, 0]]]))[0, 0]
    array([0, 0, 1, 1, 1, 0], dtype=uint8)
    """
    labels = np.asarray(check_volume(labels, "labels"))
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in range(3):
        upper = [slice(None)] * 3
        lower = [slice(None)] * 3
        upper[axis], lower[axis] = slice(1, None), slice(None, -1)
        differs = labels[tuple(upper)] != labels[tuple(lower)]
        edge[tuple(upper)] |= differs
        edge[tuple(lower)] |= differs
    edge &= labels != 0
    return edge.view(np.uint8)


def check_membrane_thickness(thickness_um: float, limit_um: float | None = None, limit_name: str = "") -> float:
    """Check a membrane wall thickness in µm: positive, finite and below ``limit_um`` (a cell
    size or the volume's extent, named ``limit_name``), where one is given."""
    if not (isinstance(thickness_um, (int, float, np.number)) and np.isfinite(thickness_um) and thickness_um > 0):
        raise CellsynthError(f"membrane thickness must be a positive length in µm, got {thickness_um!r}")
    if limit_um is not None and thickness_um >= limit_um:
        raise CellsynthError(f"a membrane thickness of {thickness_um:g} µm is not below {limit_name} ({limit_um:g} µm): "
                             "the walls would fill the cells; give the wall thickness in µm, e.g. 1")
    return float(thickness_um)


def membrane_mask(
    labels: np.ndarray, voxel_size: VoxelSize, thickness_um: float = DEFAULT_MEMBRANE_THICKNESS_UM,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """The cell walls of an instance labelling, with a thickness in µm (symmetric).

    See the module notes for the definition. Walls lie between touching cells and
    between cells and unlabelled voxels (the organism surface, or gaps in a real
    segmentation), inside the labelled cells.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X) of whole cells, 0 = background.
    voxel_size
        Voxel size in µm (z, y, x).
    thickness_um
        Wall thickness in µm.
    foreground
        Optional organism mask of the same shape; labels outside it are ignored, so its
        surface is a wall.

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1).

    Examples
    --------
    >>> labels = np.ones((1, 1, 8), np.uint16); labels[..., 4:] = 2
    >>> membrane_mask(labels, (1, 1, 1), 4.0)[0, 0]
    array([0, 0, 1, 1, 1, 1, 0, 0], dtype=uint8)
    """
    labels = np.asarray(check_volume(labels, "labels"))
    voxel = check_voxel_size(voxel_size)
    check_membrane_thickness(thickness_um, float((np.asarray(labels.shape) * voxel).max()), "the volume's extent")
    if labels.dtype.kind not in "ui":
        raise CellsynthError(f"labels must be an integer volume, got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.min() < 0:
        raise CellsynthError("labels must be non-negative integers (0 = background)")
    if foreground is not None:
        foreground = np.asarray(foreground)
        if foreground.shape != labels.shape:
            raise CellsynthError(f"foreground shape {foreground.shape} differs from labels shape {labels.shape}")
        labels = np.where(foreground != 0, labels, 0)
    wall = boundary_map(labels).view(bool)
    small = sorted(voxel)
    # The closest a voxel that does not share a face with another label can be to one.
    next_layer = min(2.0 * small[0], float(np.hypot(small[0], small[1])))
    if thickness_um / 2.0 >= next_layer:
        if labels.dtype.itemsize > 4 or labels.dtype.kind == "i":
            labels = labels.astype(np.uint32)
        dist = edt.edt(np.ascontiguousarray(labels), anisotropy=voxel, black_border=False)
        wall |= (dist <= thickness_um / 2.0) & (labels != 0)
    return wall.view(np.uint8)


def label_centroids_um(labels: np.ndarray, voxel_size: VoxelSize) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labels present, their centroids (µm) and their volumes (voxels).

    Voxel ``(k, j, i)`` has its centre at ``(k vz, j vy, i vx)`` µm. One pass over the
    volume, slice by slice (label histograms weighted by the voxel coordinates).

    Returns
    -------
    ids, centroids, counts
        ``ids`` (N,) sorted label values > 0, ``centroids`` (N, 3) in µm (z, y, x) and
        ``counts`` (N,) voxels per label.
    """
    labels = np.asarray(check_volume(labels, "labels"))
    voxel = np.asarray(check_voxel_size(voxel_size))
    if labels.dtype.kind not in "ui" or (labels.dtype.kind == "i" and labels.min() < 0):
        raise CellsynthError("labels must be non-negative integers")
    size = int(labels.max()) + 1
    y_index, x_index = np.indices(labels.shape[1:], dtype=np.float64).reshape(2, -1)
    counts = np.zeros(size, dtype=np.int64)
    sums = np.zeros((3, size))
    for z, plane in enumerate(labels):
        flat = plane.ravel()
        per_plane = np.bincount(flat, minlength=size)
        counts += per_plane
        sums[0] += z * per_plane
        sums[1] += np.bincount(flat, weights=y_index, minlength=size)
        sums[2] += np.bincount(flat, weights=x_index, minlength=size)
    ids = np.flatnonzero(counts[1:]) + 1
    centroids = (sums[:, ids] / counts[ids]).T * voxel
    return ids, centroids, counts[ids]


def centroid_map(labels: np.ndarray, voxel_size: VoxelSize, sigma_um: float = 2.0) -> np.ndarray:
    """Gaussian blobs (peak 1) at the centroid of every labelled cell.

    ``exp(-d**2 / (2 sigma**2))`` with ``d`` the distance in µm to the nearest centroid
    (the maximum over cells), cut off beyond 3 sigma. A common target for cell detection.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x).
    sigma_um
        Standard deviation of each blob in µm.

    Returns
    -------
    numpy.ndarray
        float32 map in [0, 1].
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    if not (np.isfinite(sigma_um) and sigma_um > 0):
        raise CellsynthError(f"centroid sigma must be a positive length in µm, got {sigma_um!r}")
    labels = np.asarray(check_volume(labels, "labels"))
    out = np.zeros(labels.shape, dtype=np.float32)
    _, centroids, _ = label_centroids_um(labels, voxel)
    reach = 3.0 * sigma_um
    for centre in centroids:
        lo = np.maximum(np.ceil((centre - reach) / voxel), 0).astype(int)
        hi = np.minimum(np.floor((centre + reach) / voxel).astype(int) + 1, labels.shape)
        if np.any(hi <= lo):
            continue
        axes = [(np.arange(a, b) * v - c) ** 2 for a, b, v, c in zip(lo, hi, voxel, centre)]
        d2 = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
        blob = np.exp(-d2 / (2.0 * sigma_um**2)).astype(np.float32)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        np.maximum(out[box], blob, out=out[box])
    return out


def surface_distance_map(foreground: np.ndarray, voxel_size: VoxelSize) -> np.ndarray:
    """Signed distance to the organism surface in µm (positive inside, negative outside).

    The same distance that the positional map (Eq. 1) is built on; see
    :func:`cellsynth.conditioning.signed_distance_um`.
    """
    return signed_distance_um(check_volume(np.asarray(foreground), "foreground"), voxel_size)


def structure_mask(
    labels: np.ndarray, kind: str, voxel_size: VoxelSize,
    membrane_thickness_um: float = DEFAULT_MEMBRANE_THICKNESS_UM,
) -> np.ndarray:
    """The structure the image generator sees, derived from instance labels.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X): nuclei, or whole cells for membranes.
    kind
        ``"nuclei"``: every labelled voxel; ``"membranes"``: the cell walls of
        :func:`membrane_mask`.
    voxel_size
        Voxel size in µm (z, y, x).
    membrane_thickness_um
        Wall thickness in µm (membranes only).

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1).
    """
    if kind == "nuclei":
        check_voxel_size(voxel_size)
        return (np.asarray(check_volume(labels, "labels")) != 0).view(np.uint8)
    if kind == "membranes":
        return membrane_mask(labels, voxel_size, membrane_thickness_um)
    raise CellsynthError(f"unknown structure {kind!r}; use one of {', '.join(STRUCTURES)}")
