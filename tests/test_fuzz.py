"""Random flag values and random bytes as input files for every command, under a memory cap and
a time limit: no traceback, no hang, no stray file (see tests/fuzz.py).

CI runs a fixed seed and a modest number of cases (``CELLSYNTH_FUZZ_CASES``, default 30, well
under a minute); ``python tests/fuzz.py --cases 2000`` runs a long one.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz import run_case
from hostile import make_inputs

CASES = int(os.environ.get("CELLSYNTH_FUZZ_CASES", "30"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = make_inputs(tmp_path_factory.mktemp("fuzz") / "in")
    yield folder
    (folder / "ro").chmod(0o755)


def test_random_command_lines_and_files(inputs, tmp_path):
    """In a fresh interpreter (the cases run in forked children of it, so it must not have
    started torch's threads); the results come back as JSON."""
    script = Path(__file__).with_name("fuzz.py")
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script), "--cases", str(CASES), "--seed", "0", "--inputs",
                             str(inputs), "--json", str(out)], capture_output=True, text=True, timeout=1800, env=env,
                            check=False)
    import json

    results = json.loads(out.read_text())
    assert len(results) == CASES, result.stdout + result.stderr
    failed = [f"{r['problems']}: {shlex.join(r['argv'])}\n{r['stderr']}" for r in results if r["problems"]]
    assert not failed, "\n".join(failed[:5])
    assert {r["code"] for r in results} >= {2}  # the cases reach the checks


def test_the_harness_catches_tracebacks_hangs_and_strays(inputs, tmp_path, monkeypatch):
    """Each kind of failure the fuzz looks for is reported (the harness itself can fail)."""
    import cellsynth.cli

    def broken(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(cellsynth.cli, "main", broken)
    assert run_case(["simulate"], tmp_path / "a", inputs)["problems"] == ["exit status 1", "traceback"]

    def slow(argv):
        import time

        time.sleep(30)

    monkeypatch.setattr(cellsynth.cli, "main", slow)
    assert run_case(["simulate"], tmp_path / "b", inputs, time_limit=1)["problems"] == ["no answer within 1 s"]

    def stray(argv):
        Path(".out.1234-5.x.tmp").mkdir()
        print("cellsynth: error: failed", file=sys.stderr)
        return 2

    monkeypatch.setattr(cellsynth.cli, "main", stray)
    problems = run_case(["simulate"], tmp_path / "c", inputs)["problems"]
    assert "wrote or changed files although it failed" in problems and any("temporaries" in p for p in problems)
