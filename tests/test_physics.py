"""The physics renderer: PSF, noise model, depth and tiling invariance."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cellsynth.conditioning import positional_map, signed_distance_um
from cellsynth.errors import CellsynthError
from cellsynth.render import physics
from cellsynth.render.model import SynthesisModel
from cellsynth.render.physics import PhysicsParameters, PhysicsRenderer, psf_sigma_um
from cellsynth.render.registry import default_model_name, load_model
from cellsynth.synthesis import synthesize_image
from cellsynth.tiling import synthesize_tiled

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _organism(shape=(24, 64, 72)):
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    r2 = sum(((g - s / 2) / (0.45 * s)) ** 2 for g, s in zip(grid, shape))
    foreground = (r2 < 1).astype(np.uint8)
    z, y, x = grid
    mask = (foreground & ((np.sin(z / 2.0) * np.sin(y / 4.0) * np.sin(x / 4.0)) > 0.3)).astype(np.uint8)
    return mask, foreground


def test_psf_formula_and_blur_against_scipy():
    wide = psf_sigma_um(PhysicsParameters(confocal=False, numerical_aperture=1.2, wavelength_um=0.6,
                                          refractive_index=1.4))
    assert wide[1] == pytest.approx(0.21 * 0.6 / 1.2) and wide[0] == pytest.approx(0.66 * 0.6 * 1.4 / 1.44)
    confocal = psf_sigma_um(PhysicsParameters(confocal=True, numerical_aperture=1.2, wavelength_um=0.6,
                                              refractive_index=1.4))
    np.testing.assert_allclose(np.array(wide) / np.array(confocal), math.sqrt(2))
    blur = physics._Blur((0.8, 1.7, 2.5))
    volume = np.random.default_rng(0).random((12, 30, 41)).astype(np.float32)
    expected = volume.astype(np.float64)
    for axis, kernel in enumerate(blur.kernels):
        expected = ndimage.correlate1d(expected, kernel, axis=axis, mode="nearest")
    np.testing.assert_allclose(blur(torch.from_numpy(volume)).numpy(), expected, atol=1e-5)


def test_rendered_point_has_the_psf_width():
    """Bright signal (shot noise negligible), no texture or background: a point renders as the PSF."""
    voxel = (0.5, 0.1, 0.1)
    model = PhysicsRenderer(voxel, brightness_variation=0, texture=0, autofluorescence=0, background_photons=0,
                            read_noise_adu=0, offset_adu=0, gain=1, white_adu=1e10, signal_photons=1e10)
    x = torch.zeros(1, 2, 21, 41, 41)
    x[0, 0, 10, 20, 20] = 1
    image = model(x, torch.zeros(1, 3, dtype=torch.int64))[0, 0].double().numpy()
    expected = np.array(psf_sigma_um(model.params)) / np.array(voxel)
    for axis in range(3):
        profile = image.sum(axis=tuple(a for a in range(3) if a != axis))
        t = np.arange(len(profile)) - len(profile) // 2
        assert math.sqrt((profile * t**2).sum() / profile.sum()) == pytest.approx(expected[axis], rel=0.05)


def test_noise_follows_poisson_gaussian_variance():
    p = PhysicsParameters(brightness_variation=0, texture=0, autofluorescence=0, attenuation=0)
    model = PhysicsRenderer((1, 1, 1), params=p)
    x = torch.zeros(1, 2, 16, 64, 64)
    x[0, 0] = 1  # uniform dye: optical signal 1 everywhere
    image = model(x, torch.zeros(1, 3, dtype=torch.int64))[0, 0].double().numpy()
    photons = p.signal_photons + p.background_photons
    assert image.mean() * p.white_adu == pytest.approx(p.offset_adu + p.gain * photons, rel=0.01)
    expected_var = (p.gain**2 * photons + p.read_noise_adu**2) / p.white_adu**2
    assert image.var() == pytest.approx(expected_var, rel=0.05)


def test_tiling_does_not_change_the_image():
    mask, foreground = _organism()
    voxel = (1.0, 0.3, 0.3)
    pos = positional_map(foreground, voxel, 20, 20)
    model = PhysicsRenderer(voxel, seed=3)
    assert isinstance(model, SynthesisModel)
    whole = model(torch.from_numpy(np.stack([mask, pos]).astype(np.float32))[None],
                  torch.zeros(1, 3, dtype=torch.int64))[0, 0].numpy()
    one = synthesize_tiled(model, mask, pos, patch=(12, 32, 40), crop=model.halo, overlap=0, batch_size=1,
                           progress=False)
    three = synthesize_tiled(model, mask, pos, patch=(12, 32, 40), crop=model.halo, overlap=0, batch_size=3,
                             progress=False)
    np.testing.assert_array_equal(one, three)  # batch size never matters
    np.testing.assert_allclose(one, whole, atol=1e-6)


def test_seed_reproduces_bit_for_bit_and_changes_the_image():
    mask, foreground = _organism((12, 32, 32))
    a = synthesize_image(mask, foreground, (1, 0.5, 0.5), seed=1, progress=False)
    b = synthesize_image(mask, foreground, (1, 0.5, 0.5), seed=1, progress=False)
    c = synthesize_image(mask, foreground, (1, 0.5, 0.5), seed=2, progress=False)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01
    assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1


def test_small_alpha_darkens_the_core_relative_to_the_rim():
    mask, foreground = _organism((32, 80, 80))
    voxel = (1.0, 0.5, 0.5)
    dist = signed_distance_um(foreground, voxel)
    core = (dist > 0.6 * dist.max()) & (mask > 0)
    rim = (dist > 0) & (dist < 2) & (mask > 0)
    ratios = {}
    for alpha in (10, 500):
        image = synthesize_image(mask, foreground, voxel, alpha=alpha, progress=False)
        ratios[alpha] = image[core].mean() / image[rim].mean()
    assert ratios[10] < 0.8 * ratios[500]
    assert ratios[500] > 0.9


def test_parameter_errors():
    with pytest.raises(CellsynthError, match="numerical_aperture"):
        PhysicsRenderer((1, 1, 1), numerical_aperture=0)
    with pytest.raises(CellsynthError, match="attenuation"):
        PhysicsRenderer((1, 1, 1), attenuation=1.5)
    with pytest.raises(CellsynthError, match="refractive index"):
        PhysicsRenderer((1, 1, 1), numerical_aperture=1.4)
    with pytest.raises(CellsynthError, match="unknown physics"):
        PhysicsRenderer((1, 1, 1), exposure=3)
    with pytest.raises(CellsynthError, match="voxel size"):
        PhysicsRenderer((1, 0, 1))


def test_registry(tmp_path, monkeypatch):
    from cellsynth.render import registry

    model = load_model("physics", "nuclei", voxel_size=(2, 1, 1), seed=4, numerical_aperture=0.8)
    assert isinstance(model, PhysicsRenderer) and model.seed == 4 and model.params.numerical_aperture == 0.8
    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path)
    assert default_model_name("nuclei") == "physics"
    assert isinstance(load_model("default", "membranes"), PhysicsRenderer)
    with pytest.raises(CellsynthError, match="no shipped nuclei model"):
        load_model("nuclei", "nuclei")
    with pytest.raises(CellsynthError, match="not found"):
        load_model(tmp_path / "missing.pt", "nuclei")
    with pytest.raises(CellsynthError, match="unknown kind"):
        load_model("physics", "cytoplasm")
    if not torch.cuda.is_available():
        with pytest.raises(CellsynthError, match="not available"):
            load_model("physics", "nuclei", "cuda")
    # default: what models/defaults.json names for the family, else for the kind; physics where that
    # model is not installed or the file is missing or broken
    (tmp_path / "nuclei.pt").write_bytes(b"stub")
    calls = []
    monkeypatch.setattr("cellsynth.render.gan.load_generator",
                        lambda path, device, kind=None, seed=0: calls.append((path, kind, seed)) or "generator")
    assert default_model_name("nuclei") == "physics"  # no defaults.json
    defaults = {"families": {"ovule": {"kind": "nuclei", "model": "nuclei"},
                             "root": {"kind": "membranes", "model": "root_generator"}},
                "kinds": {"nuclei": "physics", "membranes": "physics"}}
    (tmp_path / "defaults.json").write_text(json.dumps(defaults))
    assert default_model_name("nuclei", "ovule") == "nuclei" and default_model_name("nuclei") == "physics"
    assert default_model_name("membranes", "root") == "physics"  # root_generator.pt is not installed
    assert default_model_name("membranes", "ovule") == "physics"  # a family of another kind
    (tmp_path / "root_generator.pt").write_bytes(b"stub")
    assert default_model_name("membranes", "root") == "root_generator"
    assert load_model("default", "nuclei", seed=5, family="ovule") == "generator"
    assert calls == [(tmp_path / "nuclei.pt", "nuclei", 5)]
    assert isinstance(load_model("default", "nuclei", family="unknown"), PhysicsRenderer)
    (tmp_path / "defaults.json").write_text("{broken")
    assert default_model_name("nuclei", "ovule") == "physics"
    with pytest.raises(CellsynthError, match="apply only to the physics model"):
        load_model("nuclei", "nuclei", numerical_aperture=1.0)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"something": 1}, path)
    with pytest.raises(CellsynthError):
        load_model(path, "nuclei")


def test_bf16_autocast_leaves_the_optics_in_float32():
    """``synthesize --bf16`` with the physics model was a dtype error in the blur; the optics
    now run in float32 whatever the autocast, with the same result."""
    model = PhysicsRenderer((1.0, 0.5, 0.5), seed=3)
    x = torch.zeros(1, 2, 8, 24, 24)
    x[:, 0, 2:6, 6:18, 6:18] = 1
    x[:, 1] = 0.2
    origin = torch.zeros(1, 3, dtype=torch.int64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = model(x, origin)
    assert half.dtype == torch.float32
    assert torch.equal(half, model(x, origin))


def test_given_psf_and_axial_attenuation():
    """psf_sigma_um replaces the optics; axial attenuation follows Beer-Lambert along z."""
    voxel = (0.5, 0.1, 0.1)
    bright = dict(brightness_variation=0, texture=0, autofluorescence=0, background_photons=0, read_noise_adu=0,
                  offset_adu=0, gain=1, white_adu=1e10, signal_photons=1e10, attenuation=0, depth_blur_um=0)
    model = PhysicsRenderer(voxel, psf_sigma_um=(1.0, 0.3, 0.2), **bright)
    assert psf_sigma_um(model.params) == (1.0, 0.3, 0.2)
    x = torch.zeros(1, 2, 31, 41, 41)
    x[0, 0, 15, 20, 20] = 1
    image = model(x, torch.zeros(1, 3, dtype=torch.int64))[0, 0].double().numpy()
    for axis, sigma in enumerate((1.0, 0.3, 0.2)):
        profile = image.sum(axis=tuple(a for a in range(3) if a != axis))
        t = (np.arange(len(profile)) - len(profile) // 2) * voxel[axis]
        assert math.sqrt((profile * t**2).sum() / profile.sum()) == pytest.approx(sigma, rel=0.05)
    flat = PhysicsRenderer(voxel, axial_attenuation_per_um=0.1, psf_sigma_um=(0, 0, 0), **bright)
    x = torch.ones(1, 2, 12, 8, 8)
    origin = torch.tensor([[20, 0, 0]])  # planes 20-31 of a larger volume: z measured from plane 0
    image = flat(x, origin)[0, 0].double().numpy()
    planes = np.arange(20, 32) * voxel[0]
    np.testing.assert_allclose(image.mean(axis=(1, 2)), image.mean() / np.exp(-0.1 * planes).mean()
                               * np.exp(-0.1 * planes), rtol=1e-4)
    with pytest.raises(CellsynthError, match="psf_sigma_um"):
        PhysicsRenderer(voxel, psf_sigma_um=(1.0, -0.3, 0.2))
    with pytest.raises(CellsynthError, match="axial_attenuation_per_um"):
        PhysicsRenderer(voxel, axial_attenuation_per_um=-1)


def test_tissue_autofluorescence_varies_with_its_amplitude():
    voxel = (1.0, 0.5, 0.5)
    quiet = dict(read_noise_adu=0, gain=1.0, signal_photons=1e8, white_adu=1e9, offset_adu=0,
                 background_photons=0, attenuation=0, depth_blur_um=0, autofluorescence=1.0)
    x = torch.zeros(1, 2, 16, 64, 64)
    x[0, 1] = 0.5  # inside the organism, no structure
    spreads = []
    for amplitude in (0.0, 0.5, 1.0):
        model = PhysicsRenderer(voxel, seed=2, autofluorescence_variation=amplitude, **quiet)
        image = model(x, torch.zeros(1, 3, dtype=torch.int64))[0, 0].double().numpy()
        spreads.append(np.log(image).std())
    assert spreads[0] < 1e-3 < spreads[1] < spreads[2]


def test_autofluorescence_scale_sets_the_lattice_of_the_tissue_variation():
    voxel = (1.0, 0.5, 0.5)
    quiet = dict(read_noise_adu=0, gain=1.0, signal_photons=1e8, white_adu=1e9, offset_adu=0, brightness_scale_um=8.0,
                 background_photons=0, attenuation=0, depth_blur_um=0, autofluorescence=1.0,
                 autofluorescence_variation=1.0)
    x = torch.zeros(1, 2, 16, 96, 96)
    x[0, 1] = 0.5  # inside the organism, no structure
    origin = torch.zeros(1, 3, dtype=torch.int64)

    def log_image(**scale):
        return np.log(PhysicsRenderer(voxel, seed=2, **quiet, **scale)(x, origin)[0, 0].double().numpy())

    def correlation_at(image, lag):  # along x, lag in voxels
        return np.corrcoef(image[..., :-lag].ravel(), image[..., lag:].ravel())[0, 1]

    fine, coarse = log_image(autofluorescence_scale_um=2.0), log_image(autofluorescence_scale_um=8.0)
    # 4 µm apart: two lattice cells of the 2 µm field (independent), half a cell of the 8 µm field
    assert correlation_at(fine, 8) < 0.2 < 0.6 < correlation_at(coarse, 8)
    np.testing.assert_array_equal(log_image(), coarse)  # by default the brightness lattice
    with pytest.raises(CellsynthError, match="autofluorescence_scale_um"):
        PhysicsRenderer(voxel, autofluorescence_scale_um=0.0)
