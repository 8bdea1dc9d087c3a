"""Shapes of cells and organisms: spherical harmonics (Eq. 5-7), ellipsoids and statistical
shape models (Eq. 4)."""

from cellsynth._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    ".harmonics": ["inside_sh", "random_coefficients", "voxelize_sh"],
    ".ellipsoid": ["ellipsoid_mask", "random_rotation"],
    ".shape_model": ["ShapeModel", "fit_shape_model"],
})
