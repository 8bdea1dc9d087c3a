"""Where commands write: --overwrite replaces only cellsynth output, odd paths, read-only folders,
and what a killed writer leaves behind."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellsynth import io
from cellsynth.cli import main
from cellsynth.errors import CellsynthError
from cellsynth.outputs import check_output, is_cellsynth_output

SIMULATE = ["simulate", "nuclei", "--shape", "12", "24", "24", "--radius", "3", "--sh-order", "4"]


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for folders) and mode."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes(), p.stat().st_mode)
            for p in sorted(folder.rglob("*"))}


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def project(tmp_path):
    """A folder of someone's own files."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "analysis.py").write_text("print('precious')\n")
    (folder / "run.json").write_text('{"mine": true}\n')  # a marker name, but not cellsynth's
    return folder


def test_overwrite_refuses_a_folder_that_is_not_cellsynth_output(tmp_path, capsys, project, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    for argv in ([*SIMULATE, "--out", "project", "--overwrite"],
                 ["annotate", "img.tif", "--voxel-size", "1", "1", "1", "--out", "project", "--overwrite"],
                 ["export", "ds", "--to", "stardist", "--out", "project", "--overwrite"],
                 ["evaluate", "--real", "a.tif", "--synthetic", "b.tif", "--report", "project", "--overwrite"]):
        code, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "not cellsynth output" in err, (argv, err)
    assert tree(tmp_path) == before


def test_overwrite_replaces_cellsynth_output(tmp_path, capsys):
    out = tmp_path / "s"
    assert run(capsys, *SIMULATE, "--out", str(out))[0] == 0
    assert is_cellsynth_output(out)
    code, err = run(capsys, *SIMULATE, "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert run(capsys, *SIMULATE, "--seed", "1", "--out", str(out), "--overwrite")[0] == 0
    assert io.read_sample(out).metadata["seed"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_library_never_replaces_a_foreign_folder(project):
    """The last line of defence: atomic_path itself refuses to replace a foreign folder."""
    before = tree(project)
    with pytest.raises(CellsynthError, match="not cellsynth output"), io.atomic_path(project, directory=True) as tmp:
        (tmp / "sample.json").write_text("{}")
    assert tree(project) == before
    assert [p.name for p in project.parent.iterdir()] == ["project"]


@pytest.mark.parametrize("out", [".", "./", "..", "sub/.."])
def test_the_current_folder_is_refused(tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    code, err = run(capsys, *SIMULATE, "--out", out, "--overwrite")
    assert code == 2 and err.count("\n") == 1 and "current folder" in err
    assert tree(tmp_path) == before


def test_dot_dot_in_the_path_makes_no_stray_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, *SIMULATE, "--out", "sub/../o")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert io.read_sample(tmp_path / "o").labels.max() > 0


def test_read_only_output_folder_is_respected(tmp_path, capsys):
    """A folder without write permission for anyone is left alone, also when running as root
    (who could write to it): the check reads the permission bits, not only os.access."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = run(capsys, *SIMULATE, "--out", str(out))
        assert code == 2 and "read-only" in err
        assert out.is_dir() and not any(out.iterdir()) and (out.stat().st_mode & 0o777) == 0o555
        parent = tmp_path / "ro_parent"
        parent.mkdir()
        parent.chmod(0o555)
        for argv in ([*SIMULATE, "--out", str(parent / "s")],
                     ["annotate", "x.tif", "--out", str(parent / "a")],
                     ["train", "--data", "x.h5", "--kind", "nuclei", "--out", str(parent / "run")],
                     ["evaluate", "--real", "a.tif", "--synthetic", "b.tif", "--report", str(parent / "r")]):
            code, err = run(capsys, *argv)
            assert code == 2 and "read-only" in err and err.count("\n") == 1, (argv, err)
        assert not any(parent.iterdir())
    finally:
        out.chmod(0o755)
        (tmp_path / "ro_parent").chmod(0o755)


def test_outputs_on_files_and_below_files(tmp_path, capsys):
    """--out/--report naming a file, or lying below one: a one-line error from the OS's own view
    of the path (this fails for root as for anyone)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    before = tree(tmp_path)
    for argv in ([*SIMULATE, "--out", str(blocker)],
                 ["annotate", "x.tif", "--out", str(blocker)],
                 ["train", "--data", "x.h5", "--kind", "nuclei", "--out", str(blocker)],
                 ["evaluate", "--real", "a.tif", "--synthetic", "b.tif", "--report", str(blocker)],
                 [*SIMULATE, "--out", str(blocker / "s")],
                 ["train", "--data", "x.h5", "--kind", "nuclei", "--out", str(blocker / "run")],
                 ["evaluate", "--real", "a.tif", "--synthetic", "b.tif", "--report", str(blocker / "r")]):
        code, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert tree(tmp_path) == before


def test_check_output_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output("new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert check_output("empty") == tmp_path / "empty"
    (tmp_path / "image.tif").write_bytes(b"x")
    with pytest.raises(CellsynthError, match="already exists"):
        check_output("image.tif", folder=False)
    assert check_output("image.tif", folder=False, overwrite=True) == tmp_path / "image.tif"
    (tmp_path / "image.tif").chmod(0o444)
    with pytest.raises(CellsynthError, match="read-only"):
        check_output("image.tif", folder=False, overwrite=True)
    store = tmp_path / "image.ome.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    assert check_output(store, folder=False, overwrite=True) == store
    with pytest.raises(CellsynthError, match="not cellsynth output"):
        check_output(store, overwrite=True)  # as a folder output a store is foreign
    for bad in ("", "   "):
        with pytest.raises(CellsynthError, match="empty"):
            check_output(bad)


DEAD_WRITER = """
import os, signal, sys
from cellsynth import io
with io.atomic_path(sys.argv[1], directory=True) as tmp:
    (tmp / "labels.tif").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path, capsys):
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(Path(io.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", DEAD_WRITER, str(out)], env=env, check=False)
    assert result.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".o.") and leftovers[0].endswith(".tmp")
    assert run(capsys, *SIMULATE, "--out", str(out))[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_temporaries_of_running_processes_are_kept(tmp_path):
    """A temporary whose writer still runs (here: this process) is not touched."""
    with io.atomic_path(tmp_path / "o", directory=True) as tmp:
        assert io.remove_stale_temporaries(tmp_path, "o") == []
        assert tmp.is_dir()


def test_evaluate_keeps_an_existing_report_without_overwrite(tmp_path, capsys, rng):
    import numpy as np

    for name in ("real", "synthetic"):
        io.write_tiff(tmp_path / f"{name}.tif", rng.random((12, 32, 32), dtype=np.float32), (1.0, 0.5, 0.5))
    argv = ["evaluate", "--real", str(tmp_path / "real.tif"), "--synthetic", str(tmp_path / "synthetic.tif"),
            "--report", str(tmp_path / "report")]
    assert run(capsys, *argv)[0] == 0
    assert is_cellsynth_output(tmp_path / "report")
    before = tree(tmp_path)
    code, err = run(capsys, *argv)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert tree(tmp_path) == before
    assert run(capsys, *argv, "--raw", "--overwrite")[0] == 0
    assert '"raw": true' in (tmp_path / "report" / "config.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.tif", "report", "synthetic.tif"]
