"""The command-line frame: help, config files and error reporting."""

import subprocess
import sys

from cellsynth.cli import load_config, main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "cellsynth", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "COMMAND" in out.stdout


def test_config_keys_accept_dashes(tmp_path):
    (tmp_path / "c.yaml").write_text("sh-order: 7\nseed: 2\n")
    assert load_config(tmp_path / "c.yaml") == {"sh_order": 7, "seed": 2}
    (tmp_path / "c.toml").write_text("sh_order = 7\n")
    assert load_config(tmp_path / "c.toml") == {"sh_order": 7}


def test_bad_config_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("- a list\n")
    assert main(["simulate", "nuclei", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cellsynth: error:") and "Traceback" not in err
