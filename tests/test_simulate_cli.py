"""`cellsynth simulate` end to end, the pipeline, and its error paths."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cellsynth.cli import main
from cellsynth.cli.simulate import HELP_DEFAULTS
from cellsynth.errors import CellsynthError
from cellsynth.io import read_sample, write_positions, write_tiff
from cellsynth.simulate import pipeline

SMALL = ["--shape", "24", "48", "48"]
VOLUMES = ("labels.tif", "mask.tif", "foreground.tif", "positions.csv")


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_nuclei_end_to_end(tmp_path, capsys):
    out = tmp_path / "s"
    code, stdout, err = _run(capsys, "simulate", "nuclei", *SMALL, "--voxel-size", "2", "1", "1", "--radius", "4",
                             "--sh-order", "8", "--out", str(out))
    assert code == 0, err
    assert stdout.count("\n") == 1 and stdout.startswith("wrote ") and "nuclei" in stdout
    sample = read_sample(out)
    assert sample.voxel_size == (2.0, 1.0, 1.0)
    assert sample.labels.dtype == np.uint16 and sample.labels.max() == len(sample.positions["label"]) > 0
    np.testing.assert_array_equal(sample.mask, sample.labels > 0)
    meta = sample.metadata
    assert meta["kind"] == "nuclei" and meta["seed"] == 0 and meta["parameters"]["radius"] == 4.0
    timings = json.loads((out / "log.json").read_text())["timings"]
    assert {"organism_s", "positions_s", "nuclei_s", "total_s"} <= set(timings) and "timings" not in meta
    assert meta["config"]["sh_order"] == 8


def test_membranes_end_to_end(tmp_path, capsys):
    out = tmp_path / "m"
    code, stdout, err = _run(capsys, "simulate", "membranes", *SMALL, "--cell-size", "12", "--organism", "box",
                             "--out", str(out))
    assert code == 0, err
    sample = read_sample(out)
    assert sample.labels.min() >= 1  # cells fill the box
    assert sample.mask.any() and sample.metadata["parameters"]["cell_size"] == 12.0
    assert sample.metadata["parameters"]["membrane_thickness"] == HELP_DEFAULTS["membrane_thickness"]


@pytest.mark.parametrize("kind", ["nuclei", "membranes"])
def test_same_seed_same_bytes(tmp_path, capsys, monkeypatch, kind):
    """Every file, sample.json included (the timings go to log.json); each run in its own
    folder with the same relative --out, so that the recorded options are the same too."""
    extra = ["--sh-order", "8", "--radius", "4"] if kind == "nuclei" else ["--cell-size", "10"]
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        assert _run(capsys, "simulate", kind, *SMALL, *extra, "--seed", seed, "--out", "s")[0] == 0
    for file in (*VOLUMES, "sample.json"):
        assert (tmp_path / "a/s" / file).read_bytes() == (tmp_path / "b/s" / file).read_bytes(), file
    assert (tmp_path / "a/s/labels.tif").read_bytes() != (tmp_path / "c/s/labels.tif").read_bytes()


def test_zarr_format(tmp_path, capsys):
    out = tmp_path / "z"
    code, _, err = _run(capsys, "simulate", "nuclei", *SMALL, "--radius", "4", "--sh-order", "6", "--format", "zarr",
                        "--out", str(out))
    assert code == 0, err
    assert (out / "sample.ome.zarr" / "labels" / "labels").is_dir() and (out / "sample.ome.zarr" / ".zattrs").is_file()
    assert read_sample(out).labels.max() > 0


def test_given_positions_and_uniform_placement(tmp_path, capsys):
    write_positions(tmp_path / "p.csv", {"z_px": np.array([12, 12]), "y_px": np.array([12, 36]),
                                         "x_px": np.array([24, 24])})
    out = tmp_path / "p"
    code, _, err = _run(capsys, "simulate", "nuclei", *SMALL, "--organism", "box", "--positions",
                        str(tmp_path / "p.csv"), "--radius", "4", "--sh-order", "6", "--out", str(out))
    assert code == 0, err
    positions = read_sample(out).positions
    np.testing.assert_array_equal(positions["y_px"], [12, 36])
    code, _, err = _run(capsys, "simulate", "nuclei", *SMALL, "--placement", "uniform", "--count", "5",
                        "--radius", "3", "--sh-order", "6", "--out", str(tmp_path / "u"))
    assert code == 0, err
    assert len(read_sample(tmp_path / "u").positions["label"]) == 5


def test_too_many_cells_warn_in_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "simulate", "nuclei", *SMALL, "--count", "500", "--radius", "4", "--sh-order", "4",
                        "--out", str(tmp_path / "w"))
    assert code == 0
    assert err.startswith("cellsynth: warning: only ") and "of 500" in err and "Traceback" not in err


def test_config_file(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("shape: [20, 40, 40]\nradius: 3.5\nsh-order: 5\nseed: 9\n")
    code, _, err = _run(capsys, "simulate", "nuclei", "--config", str(tmp_path / "c.yaml"), "--out",
                        str(tmp_path / "s"))
    assert code == 0, err
    meta = read_sample(tmp_path / "s").metadata
    assert meta["seed"] == 9 and meta["parameters"]["sh_order"] == 5 and meta["shape"] == [20, 40, 40]


def _bad_files(tmp_path):
    (tmp_path / "corrupt.tif").write_bytes(b"this is not a tiff")
    write_tiff(tmp_path / "empty.tif", np.zeros((24, 48, 48), np.uint8), (1, 1, 1))
    (tmp_path / "outside.csv").write_text("z,y,x\n12,24,24\n30,24,24\n")
    (tmp_path / "a_file").write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")


@pytest.mark.parametrize("args, message", [
    (["--shape", "0", "48", "48"], "shape"),
    (["--shape", "-4", "48", "48"], "shape"),
    (["--shape", "100000", "100000", "100000"], "voxels"),
    (["--voxel-size", "1", "0", "1"], "--voxel-size"),
    (["--radius", "40"], "do not fit"),
    (["--radius", "-1"], "radius"),
    (["--sh-order", "500"], "SH order"),
    (["--count", "0"], "count"),
    (["--organism", "{tmp}/empty.tif"], "empty"),
    (["--organism", "{tmp}/corrupt.tif"], "corrupt.tif"),
    (["--organism", "{tmp}/missing.tif"], "not found"),
    (["--organism", "box", "--positions", "{tmp}/outside.csv"], "outside"),
    (["--positions", "{tmp}/missing.csv"], "not found"),
    (["--out", "{tmp}/a_file/sub"], "a_file"),
    (["--out", "{tmp}/full"], "--overwrite"),
    (["--margin", "4"], "organism box"),
    (["--margin", "-1"], "--margin"),
    (["--organism", "box", "--margin", "4", "--count", "5"], "placement uniform"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    _bad_files(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["simulate", "nuclei", *SMALL, "--radius", "4", "--sh-order", "6", "--out", str(tmp_path / "new")]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, stdout, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("cellsynth: error:") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing new, no temporary folder
    assert _leftovers(tmp_path / "full") == []


def test_failure_during_write_leaves_no_sample(tmp_path, capsys, monkeypatch):
    import cellsynth.io as io

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "write_positions", broken)
    code, _, err = _run(capsys, "simulate", "nuclei", *SMALL, "--radius", "4", "--sh-order", "4", "--out",
                        str(tmp_path / "s"))
    assert code == 2 and "No space left" in err
    assert list(tmp_path.iterdir()) == []


def test_missing_out_is_an_error(capsys):
    code, _, err = _run(capsys, "simulate", "membranes", *SMALL)
    assert code == 2 and "--out" in err


def test_startup_does_not_import_torch():
    code = ("import sys, cellsynth.cli as c; c.build_parser(); "
            "heavy = [m for m in ('torch', 'dask', 'scipy', 'skimage') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch" not in out.stdout, out.stdout


def test_simulate_does_not_import_torch(tmp_path):
    code = ("import sys; from cellsynth.cli import main; "
            f"main(['simulate', 'nuclei', '--shape', '16', '32', '32', '--radius', '3', '--sh-order', '4', "
            f"'--out', {str(tmp_path / 's')!r}]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_help_defaults_match_the_code():
    from cellsynth.simulate import annotations, membranes

    assert HELP_DEFAULTS["radius"] == pipeline.DEFAULT_RADIUS_UM
    assert HELP_DEFAULTS["radius_std"] == pipeline.DEFAULT_RADIUS_STD_UM
    assert HELP_DEFAULTS["smoothness"] == pipeline.DEFAULT_SMOOTHNESS
    assert HELP_DEFAULTS["sh_order"] == pipeline.DEFAULT_SH_ORDER
    assert HELP_DEFAULTS["membrane_cell_size"] == pipeline.DEFAULT_MEMBRANE_CELL_SIZE_UM
    assert HELP_DEFAULTS["nucleus_cell_size_factor"] == pipeline.NUCLEUS_CELL_SIZE_FACTOR
    assert HELP_DEFAULTS["packing_ratio"] == pipeline.PACKING_RATIO
    assert HELP_DEFAULTS["membrane_thickness"] == annotations.DEFAULT_MEMBRANE_THICKNESS_UM
    assert HELP_DEFAULTS["weight_spread"] == membranes.DEFAULT_WEIGHT_SPREAD


def test_help_names_units():
    out = subprocess.run([sys.executable, "-m", "cellsynth", "simulate", "nuclei", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--shape", "--voxel-size", "--radius", "--smoothness", "--sh-order", "--organism", "--positions"):
        assert flag in out.stdout
    assert "µm" in out.stdout


@pytest.mark.parametrize("organism, placement", [("box", "layered"), ("ellipsoid", "uniform")])
def test_cell_size_is_the_mean_cell_diameter(organism, placement):
    sample = pipeline.simulate_sample("membranes", (40, 80, 80), (1.0, 1.0, 1.0), np.random.default_rng(1),
                                      organism=organism, placement=placement, cell_size_um=12.0)
    volumes = np.bincount(sample.labels.ravel())[1:]
    assert (6 * volumes.mean() / np.pi) ** (1 / 3) == pytest.approx(12.0, rel=0.1)


def test_pipeline_defaults_and_errors():
    sample = pipeline.simulate_sample("membranes", (20, 40, 40), (1, 1, 1), np.random.default_rng(0))
    assert sample.metadata["kind"] == "membranes" and sample.labels.max() > 1
    with pytest.raises(CellsynthError, match="kind"):
        pipeline.simulate_sample("cells", (20, 40, 40), (1, 1, 1), np.random.default_rng(0))
    with pytest.raises(CellsynthError, match="placement"):
        pipeline.simulate_sample("nuclei", (20, 40, 40), (1, 1, 1), np.random.default_rng(0), placement="grid")
    with pytest.raises(CellsynthError, match="cell size"):
        pipeline.simulate_sample("nuclei", (20, 40, 40), (1, 1, 1), np.random.default_rng(0), cell_size_um=-3)


def test_center_on_the_deepest_face_makes_a_dome(tmp_path):
    import tifffile

    out = tmp_path / "dome"
    assert main(["simulate", "membranes", "--shape", "32", "64", "64", "--semi-axes", "30", "30", "30",
                 "--center", "32", "32", "32", "--cell-size", "10", "--out", str(out)]) == 0
    fg = tifffile.imread(out / "foreground.tif")
    area = fg.sum(axis=(1, 2))
    assert area[0] < area[16] < area[-1]  # widest at the base, narrow at the apex
    assert fg[-1, 32, 32] == 1 and fg[0, 0, 0] == 0


def test_huge_ellipsoid_semi_axes_cover_the_volume(tmp_path, capsys):
    """Semi-axes of 1e308 µm overflowed into an empty organism ("enlarge it"); such an ellipsoid
    covers the whole volume, as a box does."""
    code, _, err = _run(capsys, "simulate", "nuclei", *SMALL, "--radius", "4", "--sh-order", "6", "--semi-axes",
                        "1e308", "1e308", "1e308", "--out", str(tmp_path / "s"))
    assert code == 0, err
    assert read_sample(tmp_path / "s").foreground.all()


def _cells_in_slab(labels, start, width=8):
    return len(np.unique(labels[start:start + width])) - 1


def test_a_margin_makes_the_faces_cut_cells_as_inside():
    # without a margin no cell crosses a face, so cells near the faces are larger and fewer (a slab at a face
    # holds about 75 % of the cells of a slab in the middle); cut from a larger block, the two agree
    ratios = {}
    for margin in (0.0, 8.0):
        ratios[margin] = []
        for seed in range(3):
            sample = pipeline.simulate_sample("membranes", (48, 64, 64), (1.0, 1.0, 1.0), np.random.default_rng(seed),
                                              organism="box", cell_size_um=10.0, margin_um=margin, progress=False)
            assert sample.labels.shape == (48, 64, 64)
            ratios[margin].append(_cells_in_slab(sample.labels, 0) / _cells_in_slab(sample.labels, 20))
    assert max(ratios[0.0]) < 0.82 < 0.88 < min(ratios[8.0])


def test_a_cut_samples_positions_match_its_labels():
    from scipy import ndimage

    shape = (32, 64, 64)
    sample = pipeline.simulate_sample("nuclei", shape, (1.0, 0.5, 0.5), np.random.default_rng(2), organism="box",
                                      placement="uniform", count=30, radius_um=2.0, radius_std_um=0.2, sh_order=6,
                                      margin_um=6.0, progress=False)
    labels, positions = sample.labels, sample.positions
    ids = np.arange(1, labels.max() + 1)
    np.testing.assert_array_equal(positions["label"], ids)  # renumbered 1..n, one row per cell left
    np.testing.assert_allclose(positions["volume_um3"], ndimage.sum(np.ones(shape), labels, ids) * 0.25)
    np.testing.assert_array_equal(sample.mask, labels > 0)
    assert sample.metadata["parameters"]["margin"] == 6.0 and sample.metadata["parameters"]["count"] == 30
    faces = np.unique(np.concatenate([np.ravel(f) for axis in range(3) for f in
                                      (np.take(labels, 0, axis), np.take(labels, -1, axis))]))
    assert len(faces) > 5  # nuclei cut by the faces
    whole = np.setdiff1d(ids, faces)
    centres = np.asarray(ndimage.center_of_mass(labels > 0, labels, whole))
    given = np.stack([positions[f"{a}_px"] for a in "zyx"], axis=1)[whole - 1]
    np.testing.assert_allclose(given, centres, atol=1.5)  # the centres moved with the cut
    um = np.stack([positions[f"{a}_um"] for a in "zyx"], axis=1)
    voxels = np.stack([positions[f"{a}_px"] for a in "zyx"], axis=1) * [1.0, 0.5, 0.5]
    np.testing.assert_allclose(um, voxels, atol=0.5)  # the same shift in µm (the voxel index is rounded)
