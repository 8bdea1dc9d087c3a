"""The README's Quick start: two commands, and `.ci/run` runs the second one verbatim."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("needs the source checkout")
    section = readme.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quick_start_has_two_one_line_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert "torch==2.13.0" in commands[0] and "cellsynth dataset" in commands[0]
    assert '".[test]"' in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_second_quick_start_command():
    ci = ROOT / ".ci" / "run"
    lines = [line for line in ci.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#") and not line.startswith("cd ")]
    assert lines == [_quick_start_commands()[1]]
