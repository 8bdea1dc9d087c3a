"""Fuzz the command line: random flag values and random bytes as input files, for every command.

Cases are drawn from a seeded generator over the parser itself (every leaf command and every
option, so commands added later are covered too), each run by ``cellsynth.cli.main`` in a
forked child of this process (imports are paid once) with its address space capped
(``resource.setrlimit``) and a time limit. A case passes when it exits 0 or 2, with no
traceback, at most one line on stderr when it fails, no temporary left anywhere, and, when it
fails, nothing changed on disk.

    python tests/fuzz.py --cases 2000 --seed 1          # a long run; prints a summary
    python tests/fuzz.py --cases 40 --json out.json     # what tests/test_fuzz.py runs

Each command gets small settings it keeps unless a fuzzed value replaces them (``ANCHORS``),
so that a case that happens to be valid does seconds of work, not hours.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hostile import make_inputs, snapshot  # tests/ is on the path: this script's folder, or pytest's rootdir

MEMORY_CAP = 3 * 2**30
"""Address space a case may add to what the imports already take."""

TIME_LIMIT_S = 120.0
"""A case still running after this long counts as a hang."""

ANCHORS = {
    "cellsynth simulate nuclei": "--shape 8 24 24 --radius 3 --sh-order 4 --out out",
    "cellsynth simulate membranes": "--shape 8 24 24 --out out",
    "cellsynth shape-model fit": "{in}/labels.tif --rays 50 --out m.npz",
    "cellsynth shape-model sample": "{in}/model.npz --shape 24 24 24 --out s.tif",
    "cellsynth synthesize": "{in}/sample --model physics --out out.tif",
    "cellsynth train": "--data {in}/nuclei.h5 --kind nuclei --out run --steps 1 --patch 16 16 16 --width 2 "
                       "--depth 2 --d-width 2 --d-layers 2 --preview-every 0 --threads 1",
    "cellsynth evaluate": "--real {in}/real.tif --synthetic {in}/real.tif",
    "cellsynth annotate": "{in}/real.tif --out ann",
    "cellsynth dataset": "--preset nuclei --count 1 --shape 8 24 24 --radius 3 --sh-order 4 --model physics "
                         "--workers 1 --out ds",
    "cellsynth export": "{in}/dataset --to stardist --out exp",
}

INTS = ["-1", "0", "1", "2", "3", "8", "64", "100000000000", "99999999999999999999", "1.5", "nan", "x", ""]
"""Values for whole-number options: each is invalid or small, or so large that a check must refuse it
(a valid large count would be real work, not a hang)."""
FLOATS = ["-1", "0", "1e-9", "0.5", "1", "3", "1e300", "-1e300", "nan", "inf", "1e-300", "abc", ""]
WORDS = ["", ".", "..", "/", "x" * 300, "nonexistent", "-", "{in}/afile", "{in}/project", "{in}/ro"]
EXTENSIONS = (".tif", ".h5", ".npy", ".npz", ".pt", ".csv", ".yaml", ".toml", ".json", ".ome.zarr")
MAGIC = {".tif": b"II*\x00", ".h5": b"\x89HDF\r\n\x1a\n", ".npy": b"\x93NUMPY\x01\x00", ".npz": b"PK\x03\x04",
         ".pt": b"PK\x03\x04", ".csv": b"z,y,x\n", ".yaml": b"seed: ", ".toml": b"seed = ", ".json": b"{"}


def leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command of the parser, by its ``prog`` (``cellsynth simulate nuclei``...)."""
    from cellsynth.cli import build_parser

    found = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[parser.prog] = parser
        for sub in subs:
            for child in dict.fromkeys(sub.choices.values()):
                walk(child)

    walk(build_parser())
    return found


def random_files(folder: Path, rng: random.Random) -> list[str]:
    """Files of random bytes under every extension cellsynth reads: all random, a right magic
    number then random bytes, and cuts of good inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for ext in EXTENSIONS:
        for variant in ("random", "magic"):
            path = folder / f"{variant}{ext}"
            data = rng.randbytes(rng.choice([0, 1, 17, 600, 5000]))
            if variant == "magic":
                data = MAGIC.get(ext, b"") + data
            if ext == ".ome.zarr":
                path.mkdir()
                (path / ".zattrs").write_bytes(data)
                (path / "zarr.json").write_bytes(rng.randbytes(64))
            else:
                path.write_bytes(data)
            files.append(str(path))
    return files


def make_cases(n: int, seed: int, inputs: Path, files: list[str]) -> list[list[str]]:
    """``n`` command lines: a command, its anchors, then one to three options or inputs replaced
    by random values."""
    rng = random.Random(seed)
    parsers = leaf_parsers()
    good = [str(p) for p in sorted(inputs.iterdir())]
    cases = []
    for _ in range(n):
        prog = rng.choice(sorted(parsers))
        parser = parsers[prog]
        argv = prog.split()[1:] + shlex.split(ANCHORS.get(prog, ""))
        positional = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
        options = [a for a in parser._actions if a.option_strings and a.dest not in ("help", "version")]
        for _ in range(rng.randint(1, 3)):
            if positional and rng.random() < 0.3:
                index = len(prog.split()) - 1
                value = rng.choice(files + good + WORDS)
                argv = argv[:index] + [value] + argv[index + 1:] if len(argv) > index else argv + [value]
                continue
            action = rng.choice(options)
            argv += [rng.choice(action.option_strings), *_values(action, rng, files + good)]
        cases.append([a.replace("{in}", str(inputs)) for a in argv])
    return cases


def _values(action: argparse.Action, rng: random.Random, files: list[str]) -> list[str]:
    if action.nargs == 0:
        return []
    count = action.nargs if isinstance(action.nargs, int) else rng.choice([1, 1, 2, 3])
    if rng.random() < 0.1:  # a wrong number of values
        count = rng.choice([0, 1, 2, 4]) if isinstance(action.nargs, int) else count
    pool = (list(map(str, action.choices)) + ["bogus"] if action.choices
            else INTS if _type_name(action) == "int" else FLOATS if _type_name(action) == "float"
            else files + WORDS + INTS[:3])
    return [rng.choice(pool) for _ in range(count)]


def _type_name(action: argparse.Action) -> str:
    name = getattr(action.type, "__name__", "")
    return "int" if name in ("int", "whole number", "seed") else "float" if name in ("float", "number") else "other"


def run_case(argv: list[str], work: Path, inputs: Path, time_limit: float = TIME_LIMIT_S) -> dict:
    """Run one command line in a forked child, capped in memory and time; what happened."""
    from cellsynth.io import is_temporary

    work.mkdir(parents=True)
    before = snapshot(inputs)
    err_path, out_path = work.parent / f"{work.name}.err", work.parent / f"{work.name}.out"
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.chdir(work)
            used = _status_kib("VmSize") * 1024
            resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_CAP, used + MEMORY_CAP))
            for fd, path in ((1, out_path), (2, err_path)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
            from cellsynth.cli import main

            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001 - what the test looks for
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    hang = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > time_limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            hang, status = True, -1
            break
        time.sleep(0.01)
    code = os.waitstatus_to_exitcode(status) if not hang else None
    err = err_path.read_text(errors="replace")
    changed = snapshot(inputs) != before
    # temporaries of a case killed for taking too long are the kill's; the next run removes them
    left = [] if hang else [str(p) for folder in (work, inputs) for p in folder.rglob("*") if is_temporary(p.name)]
    problems = []
    if hang:
        problems.append(f"no answer within {time_limit:g} s")
    elif code not in (0, 2):
        problems.append(f"exit status {code}")
    if "Traceback" in err:
        problems.append("traceback")
    if code == 2 and (err.count("\n") != 1 or not err.startswith("cellsynth: error: ")):
        problems.append("not one error line")
    if code == 2 and (changed or any(work.iterdir())):
        problems.append("wrote or changed files although it failed")
    if left:
        problems.append(f"left temporaries {left[:2]}")
    return {"argv": argv, "code": code, "seconds": round(time.monotonic() - start, 2), "stderr": err[-2000:],
            "problems": problems}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def fuzz(cases: int, seed: int, inputs: Path, work: Path) -> list[dict]:
    """Make the random files, draw ``cases`` command lines and run each one."""
    import numpy  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import torch  # noqa: F401 - imported only: no threads yet, so forking is safe

    import cellsynth.cli  # noqa: F401 - paid once, before the children fork

    rng = random.Random(seed)
    files = random_files(work / "random", rng)
    results = []
    for i, argv in enumerate(make_cases(cases, seed, inputs, files)):
        results.append(run_case(argv, work / f"case{i:05d}", inputs))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", type=Path, help="inputs made by tests/hostile.py (default: make them)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cellsynth-fuzz-"))
    inputs = args.inputs
    if inputs is None:
        inputs = make_inputs(work / "in")
    start = time.monotonic()
    results = fuzz(args.cases, args.seed, inputs, work / "cases")
    failed = [r for r in results if r["problems"]]
    codes = {str(c): sum(r["code"] == c for r in results) for c in sorted({r["code"] for r in results}, key=str)}
    print(f"{len(results)} cases in {time.monotonic() - start:.0f} s (seed {args.seed}); exit statuses {codes}; "
          f"{len(failed)} with problems")
    for r in failed[:20]:
        print(" ", r["problems"], shlex.join(r["argv"]), "|", r["stderr"].strip().splitlines()[-1:] or "")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
