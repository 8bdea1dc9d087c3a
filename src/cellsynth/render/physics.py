"""An optical forward model of a fluorescence microscope: the built-in synthesis model.

It follows the image formation of the paper's Fig. 2 (signal, point spread function,
noise) and uses the positional map (Eq. 1) for the depth dependence, so the conditioning
parameter alpha acts as image quality as in the paper's section 4.4:

1. **Fluorophores.** The structure mask is filled with dye whose brightness varies
   smoothly over cell-sized distances: the factor ``exp(brightness_variation * v)``, ``v``
   smooth value noise in [-1, 1] on a lattice of ``brightness_scale_um`` (log-normal-like,
   never negative); it carries a finer texture ``1 + texture * u`` (``u`` on a lattice of
   ``texture_scale_um``). The organism interior (positional map > 0) adds autofluorescence
   ``autofluorescence`` (relative to the dye), which varies from cell to cell by
   ``exp(autofluorescence_variation * w)`` (``w`` smooth value noise independent of ``v``,
   on a lattice of ``autofluorescence_scale_um``, by default ``brightness_scale_um``: the
   cytoplasm of neighbouring cells differs where the dye in their walls varies over
   several cells) and is grainy like the cytoplasm: ``1 + tissue_texture * u'`` (``u'`` on the texture lattice,
   independent of ``u``).
2. **Depth.** With ``depth = max(positional map, 0)`` (0 at the organism surface, towards 1
   deep inside), the emitted signal is attenuated by ``1 - attenuation * depth`` and the
   image is blurred further by up to ``depth_blur_um`` (scattering). Along the optical
   axis, light is also lost exponentially with the depth z below the top of the volume
   (Beer-Lambert): ``exp(-axial_attenuation_per_um * z)``, z in µm from plane 0.
3. **Optics.** An anisotropic Gaussian PSF from the numerical aperture, emission wavelength
   and refractive index (Zhang et al., Appl. Opt. 46:1819, 2007: widefield
   sigma_xy = 0.21 lambda / NA, sigma_z = 0.66 lambda n / NA^2; a confocal PSF is the
   product of excitation and emission PSFs, i.e. these divided by sqrt 2), or the standard
   deviations given directly (``psf_sigma_um``, e.g. measured by ``cellsynth calibrate``).
4. **Camera.** Expected photons ``signal_photons * optical + background_photons``;
   Poisson-Gaussian noise in its heteroscedastic normal approximation (Foi et al., IEEE
   TIP 17:1737, 2008): ``ADU = offset + gain * photons + sqrt(gain^2 photons + read^2) * n``;
   the image is ``ADU / white_adu`` clipped to [0, 1].

All randomness (brightness, texture, noise) is a function of the seed and the **global**
voxel coordinate, computed with a counter-based hash, so the image does not depend on how
the volume is tiled: with a crop of at least :attr:`PhysicsRenderer.halo`, tiled and
whole-volume synthesis agree to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size
from cellsynth.render.randomness import value_noise, voxel_normal


@dataclass(frozen=True)
class PhysicsParameters:
    """Parameters of the optical forward model (units in the names; defaults: a confocal
    microscope with a water-immersion objective imaging GFP).

    ``psf_sigma_um`` (z, y, x), where given, replaces the PSF computed from
    ``numerical_aperture``, ``wavelength_um``, ``refractive_index`` and ``confocal``.
    ``axial_attenuation_per_um`` is the extinction coefficient along z (1/µm).
    ``autofluorescence_scale_um``, where given, is the lattice of the tissue's
    autofluorescence variation (else ``brightness_scale_um``).
    """

    numerical_aperture: float = 1.0
    wavelength_um: float = 0.52
    refractive_index: float = 1.33
    confocal: bool = True
    psf_sigma_um: tuple[float, float, float] | None = None
    depth_blur_um: float = 0.6
    attenuation: float = 0.7
    axial_attenuation_per_um: float = 0.0
    brightness_variation: float = 0.35
    brightness_scale_um: float = 5.0
    texture: float = 0.25
    texture_scale_um: float = 0.8
    autofluorescence: float = 0.06
    autofluorescence_variation: float = 0.0
    autofluorescence_scale_um: float | None = None
    tissue_texture: float = 0.0
    signal_photons: float = 60.0
    background_photons: float = 4.0
    gain: float = 2.0
    read_noise_adu: float = 4.0
    offset_adu: float = 20.0
    white_adu: float = 260.0

    def validate(self) -> PhysicsParameters:
        """Check ranges; raise CellsynthError naming the parameter to change."""
        positive = ("numerical_aperture", "wavelength_um", "refractive_index", "brightness_scale_um",
                    "autofluorescence_scale_um", "texture_scale_um", "gain", "white_adu")
        nonnegative = ("depth_blur_um", "brightness_variation", "texture", "autofluorescence",
                       "autofluorescence_variation", "tissue_texture", "signal_photons",
                       "background_photons", "read_noise_adu", "offset_adu", "axial_attenuation_per_um")
        if self.psf_sigma_um is not None:
            sigma = self.psf_sigma_um
            if not (isinstance(sigma, tuple) and len(sigma) == 3
                    and all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in sigma)):
                raise CellsynthError(f"physics parameter psf_sigma_um must be three lengths >= 0 in µm (z, y, x), "
                                     f"got {sigma!r}")
        for name, value in asdict(self).items():
            if name in ("confocal", "psf_sigma_um") or (name == "autofluorescence_scale_um" and value is None):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise CellsynthError(f"physics parameter {name} must be a number, got {value!r}")
            if not np.isfinite(value) or (name in positive and value <= 0) or (name in nonnegative and value < 0):
                raise CellsynthError(f"physics parameter {name} must be {'positive' if name in positive else '>= 0'}, "
                                     f"got {value}")
        if not 0 <= self.attenuation < 1:
            raise CellsynthError(f"physics parameter attenuation must be in [0, 1), got {self.attenuation}")
        if self.numerical_aperture >= self.refractive_index:
            raise CellsynthError(f"numerical aperture {self.numerical_aperture} must be below the refractive index "
                                 f"{self.refractive_index}")
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "physics parameters") -> PhysicsParameters:
        """Validated parameters from a mapping (e.g. YAML): unknown names are refused,
        ``psf_sigma_um`` may be a list.

        Raises
        ------
        CellsynthError
            Naming the unknown or invalid parameter.
        """
        if not isinstance(values, Mapping):
            raise CellsynthError(f"{where} must be a mapping of parameter names to values, got {values!r}")
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise CellsynthError(f"{where}: unknown physics parameters {', '.join(unknown)}; "
                                 f"known: {', '.join(cls.__dataclass_fields__)}")
        values = dict(values)
        if isinstance(values.get("psf_sigma_um"), (list, tuple)):
            values["psf_sigma_um"] = tuple(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                                           for v in values["psf_sigma_um"])
        return cls(**values).validate()


def psf_sigma_um(params: PhysicsParameters) -> tuple[float, float, float]:
    """Gaussian PSF standard deviations (z, y, x) in µm: ``params.psf_sigma_um`` where given,
    else from the optics (Zhang et al. 2007, paraxial)."""
    if params.psf_sigma_um is not None:
        return tuple(float(v) for v in params.psf_sigma_um)  # type: ignore[return-value]
    lam, na, n = params.wavelength_um, params.numerical_aperture, params.refractive_index
    lateral, axial = 0.21 * lam / na, 0.66 * lam * n / na**2
    if params.confocal:
        lateral, axial = lateral / math.sqrt(2), axial / math.sqrt(2)
    return (axial, lateral, lateral)


class PhysicsRenderer:
    """The optical forward model as a :class:`~cellsynth.render.model.SynthesisModel`.

    Parameters
    ----------
    voxel_size
        Voxel size in µm (z, y, x): the PSF and all scales are converted with it.
    seed
        Seed of all random fields and of the noise.
    params
        Model parameters; keyword arguments override single fields.
    device
        Torch device of the computation.

    Examples
    --------
    >>> model = PhysicsRenderer((1.0, 0.25, 0.25), seed=1)
    >>> x = torch.zeros(1, 2, 8, 32, 32); x[:, 0, 2:6, 8:24, 8:24] = 1; x[:, 1] = 0.1
    >>> model(x, torch.zeros(1, 3, dtype=torch.int64)).shape
    torch.Size([1, 1, 8, 32, 32])
    """

    size_multiple = (1, 1, 1)
    default_patch = (32, 512, 512)
    working_bytes_per_voxel = 48
    """Memory of rendering one patch, per voxel (measured: 46 bytes on a 32x512x512 patch)."""

    def __init__(self, voxel_size: VoxelSize = (1.0, 1.0, 1.0), seed: int = 0,
                 params: PhysicsParameters | None = None, device: Any = "cpu", **overrides: Any) -> None:
        self.params = PhysicsParameters.from_mapping({**asdict(params or PhysicsParameters()), **overrides})
        self.voxel_size = check_voxel_size(voxel_size)
        self.seed = int(seed)
        self.device = torch.device(device)
        voxel = np.asarray(self.voxel_size)
        psf = np.asarray(psf_sigma_um(self.params)) / voxel
        self.blur_surface = _Blur(psf)
        self.blur_deep = _Blur(np.hypot(psf, self.params.depth_blur_um / voxel))
        self.halo = self.blur_deep.radius
        self.brightness_cells = tuple(max(1, round(self.params.brightness_scale_um / v)) for v in voxel)
        self.texture_cells = tuple(max(1, round(self.params.texture_scale_um / v)) for v in voxel)
        tissue_scale = self.params.autofluorescence_scale_um or self.params.brightness_scale_um
        self.tissue_cells = tuple(max(1, round(tissue_scale / v)) for v in voxel)

    def description(self) -> dict[str, Any]:
        """Everything that determines the output, for recording in metadata."""
        return {"model": "physics", "seed": self.seed, "voxel_size_um": list(self.voxel_size),
                "psf_sigma_um": list(psf_sigma_um(self.params)), **asdict(self.params)}

    def __call__(self, inputs: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        """Render ``(N, 2, Z, Y, X)`` inputs (mask, positional map) to ``(N, 1, Z, Y, X)`` images.

        ``origins`` ``(N, 3)`` are the patches' corners in the volume (voxels).
        """
        images = [self._render(inputs[i], [int(v) for v in origins[i]]) for i in range(inputs.shape[0])]
        return images[0][None] if len(images) == 1 else torch.stack(images)

    def _render(self, x: torch.Tensor, origin: list[int]) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=False):  # float32 optics, also under --bf16
            return self._render_float32(x, origin)

    def _render_float32(self, x: torch.Tensor, origin: list[int]) -> torch.Tensor:
        p = self.params
        x = x.to(self.device, torch.float32)
        mask, pos = x[0], x[1]
        shape = tuple(mask.shape)
        depth = pos.clamp(min=0.0)
        dye = value_noise(self.seed, 1, origin, shape, self.brightness_cells, p.brightness_variation,
                          smooth=True, device=self.device).exp_()
        dye.mul_(value_noise(self.seed, 2, origin, shape, self.texture_cells, p.texture,
                             smooth=False, device=self.device).add_(1.0).clamp_(min=0.0))
        tissue = (pos > 0).to(torch.float32).mul_(p.autofluorescence)
        if p.autofluorescence_variation > 0:
            tissue.mul_(value_noise(self.seed, 3, origin, shape, self.tissue_cells, p.autofluorescence_variation,
                                    smooth=True, device=self.device).exp_())
        if p.tissue_texture > 0:
            tissue.mul_(value_noise(self.seed, 4, origin, shape, self.texture_cells, p.tissue_texture,
                                    smooth=False, device=self.device).add_(1.0).clamp_(min=0.0))
        density = dye.mul_(mask).add_(tissue)
        density.mul_(depth * -p.attenuation + 1.0)
        if p.axial_attenuation_per_um > 0:  # Beer-Lambert along z, from plane 0 of the whole volume
            planes = torch.arange(origin[0], origin[0] + shape[0], device=self.device, dtype=torch.float32)
            density.mul_(torch.exp(planes * (-p.axial_attenuation_per_um * self.voxel_size[0]))[:, None, None])
        optical = torch.lerp(self.blur_surface(density), self.blur_deep(density), depth)
        # Camera, in units of the white level: photons -> ADU / white_adu.
        photons = optical.mul_(p.signal_photons).add_(p.background_photons)
        scale = p.gain / p.white_adu
        sd = (photons * scale**2).add_((p.read_noise_adu / p.white_adu) ** 2).sqrt_()
        image = photons.mul_(scale).add_(p.offset_adu / p.white_adu)
        return image.addcmul_(sd, voxel_normal(self.seed, origin, shape, self.device)).clamp_(0.0, 1.0)[None]


# --------------------------------------------------------------------------- blur


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalized 1D Gaussian of radius ceil(3 sigma) (a single 1 for sigma below 0.1 voxel)."""
    radius = math.ceil(3 * sigma) if sigma >= 0.1 else 0
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def _blur_matrix(kernel: np.ndarray, size: int) -> np.ndarray:
    """Convolution with edge replication along an axis of ``size`` as a (size, size) matrix."""
    r = len(kernel) // 2
    matrix = np.zeros((size, size))
    rows = np.arange(size)
    for t, weight in enumerate(kernel):
        np.add.at(matrix, (rows, np.clip(rows + t - r, 0, size - 1)), weight)
    return matrix


class _Blur:
    """Separable Gaussian blur, one banded matrix product per axis (faster than conv3d with
    1D kernels on CPU). Edges are replicated alike at patch and volume borders."""

    def __init__(self, sigma_voxels: Any) -> None:
        self.kernels = [_gaussian_kernel(s) for s in sigma_voxels]
        self.radius = tuple(len(k) // 2 for k in self.kernels)
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _matrix(self, axis: int, size: int, device: torch.device) -> torch.Tensor:
        key = (axis, size, str(device))
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(_blur_matrix(self.kernels[axis], size), dtype=torch.float32,
                                               device=device)
        return self._cache[key]

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        z, y, x = volume.shape
        out = volume
        if self.radius[0]:
            out = (self._matrix(0, z, volume.device) @ out.reshape(z, y * x)).reshape(z, y, x)
        if self.radius[1]:
            out = self._matrix(1, y, volume.device) @ out
        if self.radius[2]:
            out = out @ self._matrix(2, x, volume.device).T
        return out
