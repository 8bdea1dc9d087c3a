"""Figures and the report: PNGs written, profiles equal numpy references, report content."""

import json

import numpy as np
import pytest
from scipy import ndimage

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.evaluate import plots, report
from cellsynth.evaluate.realism import FLOOR, realism_volume

VOXEL = (0.5, 0.2, 0.2)


def _pair(rng, shape=(24, 40, 48)):
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    fg = ((zz - 12) / 10) ** 2 + ((yy - 20) / 17) ** 2 + ((xx - 24) / 20) ** 2 < 1
    real = ndimage.gaussian_filter((rng.random(shape) > 0.97).astype(np.float32), 1.5) * fg * 20
    real += 0.05 * rng.random(shape)
    synthetic = ndimage.gaussian_filter(real, 0.6) + 0.05 * rng.random(shape)
    return real.astype(np.float32), synthetic.astype(np.float32), fg.astype(np.uint8)


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_xz_profile_and_spectrum_equal_numpy(rng):
    volume = rng.random((6, 9, 14))
    x, profile = plots.xz_profile(volume, VOXEL)
    np.testing.assert_allclose(profile, volume[:, 4].sum(axis=0) * 0.5)
    np.testing.assert_allclose(x, np.arange(14) * 0.2)
    f, power = plots.xz_spectrum(volume, VOXEL, bins=4)
    assert f.max() < 0.5 / 0.5  # up to the z Nyquist frequency (cycles/µm)
    assert np.all(power > 0)


def test_depth_profile_equals_brute_force(rng):
    image = rng.random((10, 20, 20)).astype(np.float32)
    fg = np.zeros(image.shape, np.uint8)
    fg[2:8, 4:16, 4:16] = 1
    d, mean = plots.depth_profile(image, fg, (1, 1, 1), bin_um=1.0, percentiles=None)
    from cellsynth.conditioning import signed_distance_um

    dist = signed_distance_um(fg, (1, 1, 1))
    for centre, value in zip(d, mean):
        sel = (dist >= centre - 0.5) & (dist < centre + 0.5)
        assert value == pytest.approx(image[sel].mean(), rel=1e-5)


def test_depth_profile_block_averaging_is_close(rng):
    real, _, fg = _pair(rng, (24, 80, 96))
    full = plots.depth_profile(real, fg, VOXEL, bin_um=1.0)
    small = plots.depth_profile(real, fg, VOXEL, bin_um=1.0, max_voxels=20_000)
    common = np.intersect1d(np.round(full[0], 3), np.round(small[0], 3))
    assert len(common) >= 3


def test_evaluate_pair_writes_report(tmp_path, rng):
    real, synthetic, fg = _pair(rng)
    results = report.evaluate_pair(real, synthetic, VOXEL, tmp_path / "rep", foreground=fg,
                                   inputs={"real": "a.tif"})
    out = tmp_path / "rep"
    data = json.loads((out / "metrics.json").read_text())
    for key in ("nrmse", "nrmse_euclidean", "ssim", "zncc", "histogram_distance", "spectrum_distance", "kid"):
        assert np.isfinite(data[key]) and data[key] == pytest.approx(results[key])
    assert data["info"]["voxel_size_um"]["real"] == list(VOXEL)
    html = (out / "report.html").read_text()
    for name, _ in report.FIGURES.values():
        assert _is_png(out / name) and name in html
    assert "ssim" in html and "a.tif" in html
    assert report.evaluate_pair(real, synthetic, VOXEL)["ssim"] == pytest.approx(results["ssim"])


def _dataset(root, rng, n=3, missing=()):
    for i in range(n):
        if i in missing:
            continue
        real, synthetic, fg = _pair(rng)
        sample = io.Sample(labels=fg.astype(np.uint16), mask=fg, foreground=fg, voxel_size=VOXEL,
                           image=synthetic / synthetic.max())
        io.write_sample(root / "samples" / f"sample_{i:04d}", sample)


def test_evaluate_unpaired_and_missing_samples(tmp_path, rng):
    _dataset(tmp_path / "ds", rng)
    volumes, _ = report.dataset_volumes(tmp_path / "ds")
    assert len(volumes) == 3 and volumes[0].structure is not None
    reals = [realism_volume(_pair(rng)[0], VOXEL) for _ in range(2)]
    results = report.evaluate_unpaired({"model": volumes}, reals, tmp_path / "rep", patches_per_set=16)
    assert list(results["rows"]) == [FLOOR, "model"]
    assert results["rows"]["model"]["n_volumes"] == 3
    assert all(np.isfinite(results["rows"]["model"][k]) for k in ("histogram_w1", "spectrum", "kid"))
    for name in ("report.html", "montage.png", "xy_spectra.png", "histograms.png", "metrics.json"):
        assert (tmp_path / "rep" / name).is_file()
    assert "floor (real vs real)" in (tmp_path / "rep" / "report.html").read_text()
    # a data set whose manifest lists a sample that is not there
    manifest = {"format": "cellsynth-dataset", "parameters": {}, "samples": [
        {"name": f"sample_{i:04d}"} for i in range(4)]}
    io.write_json(tmp_path / "ds" / "dataset.json", manifest)
    with pytest.raises(CellsynthError, match="1 of 4 samples .* missing"):
        report.dataset_volumes(tmp_path / "ds")
    with pytest.raises(CellsynthError, match="not a data set"):
        report.dataset_volumes(tmp_path / "nothing")
    with pytest.raises(CellsynthError, match="--image"):
        report.dataset_images(_only(tmp_path, rng), "image_alpha10")


def test_montage_shows_one_field_of_view(tmp_path, rng):
    big, small = rng.random((20, 60, 80)), rng.random((10, 40, 40))
    plots.plot_montage({"real": big, "synthetic": small}, {"real": (0.5, 0.2, 0.2), "synthetic": (1.0, 0.3, 0.3)},
                       tmp_path / "m.png")
    assert _is_png(tmp_path / "m.png")
    with pytest.raises(CellsynthError, match="nothing to plot"):
        plots.plot_montage({}, VOXEL, tmp_path / "none.png")


def _only(tmp_path, rng):
    _dataset(tmp_path / "one", rng, n=1)
    return tmp_path / "one"


@pytest.mark.parametrize("plot", [plots.plot_spectra, plots.plot_depth_profile])
def test_line_plots_write_a_png_and_refuse_nothing(plot, tmp_path):
    x = np.linspace(0.1, 2.0, 20)
    plot({"real": (x, np.exp(-x)), "synthetic": (x, np.exp(-2 * x))}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CellsynthError, match="nothing to plot"):
        plot({}, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
